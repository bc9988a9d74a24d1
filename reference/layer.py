"""The course's `Layer` base class: a layer remembers its last input and output."""
from abc import ABC, abstractmethod

import numpy as np


class Layer(ABC):
    """Base class of every layer: `forward` stores its input and output for `gradient`."""

    def __init__(self):
        self.__prevIn = []
        self.__prevOut = []

    def setPrevIn(self, dataIn):
        self.__prevIn = dataIn

    def setPrevOut(self, out):
        self.__prevOut = out

    def getPrevIn(self):
        return self.__prevIn

    def getPrevOut(self):
        return self.__prevOut

    @abstractmethod
    def forward(self, dataIn):
        """Return the layer's output for the N×D input and store both."""

    @abstractmethod
    def gradient(self):
        """Return ∂out/∂in at the stored input, per observation."""

    def backward(self, gradIn):
        """Return δ · ∂out/∂in: element-wise for a diagonal gradient, a matrix product per row otherwise."""
        grad = self.gradient()
        gradIn = np.asarray(gradIn, dtype=float)
        if grad.ndim == 2:
            return gradIn * grad
        return np.einsum("nk,nkd->nd", gradIn, grad)
