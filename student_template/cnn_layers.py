"""The convolutional network's layers: implement every method that raises NotImplementedError.

An image is an H×W array (one image at a time). The course cross-correlates: forward slides the
kernel over the image without flipping it (no padding: the output is (H−kH+1)×(W−kW+1)).
"""
import numpy as np

from Layer import Layer


class ConvolutionalLayer(Layer):
    def __init__(self, kernelHeight, kernelWidth):
        """Start with a kernel of small random values, kernelHeight × kernelWidth."""
        super().__init__()
        raise NotImplementedError("TODO: ConvolutionalLayer.__init__: a small random kernel")

    def getKernel(self):
        raise NotImplementedError("TODO: ConvolutionalLayer.getKernel")

    def setKernel(self, kernel):
        raise NotImplementedError("TODO: ConvolutionalLayer.setKernel")

    def forward(self, dataIn):
        """Return the valid cross-correlation of the H×W image dataIn with the kernel; store input and output."""
        raise NotImplementedError("TODO: ConvolutionalLayer.forward")

    def gradient(self):
        """Not graded."""
        raise NotImplementedError("TODO: ConvolutionalLayer.gradient (not graded)")

    def backward(self, gradIn):
        """Return ∂J/∂X: gradIn zero-padded, cross-correlated with the kernel turned 180°."""
        raise NotImplementedError("TODO: ConvolutionalLayer.backward")

    def updateWeights(self, gradIn, eta):
        """Step the kernel: K ← K − η ∂J/∂K, with ∂J/∂K the stored input cross-correlated with gradIn."""
        raise NotImplementedError("TODO: ConvolutionalLayer.updateWeights")


class MaxPoolLayer(Layer):
    def __init__(self, poolSize, stride):
        super().__init__()
        raise NotImplementedError("TODO: MaxPoolLayer.__init__: remember the pool size and the stride")

    def forward(self, dataIn):
        """Return the maximum of each poolSize × poolSize window, windows `stride` apart; store the input."""
        raise NotImplementedError("TODO: MaxPoolLayer.forward")

    def gradient(self):
        """Not graded."""
        raise NotImplementedError("TODO: MaxPoolLayer.gradient (not graded)")

    def backward(self, gradIn):
        """Send each output's gradient to the position of its window's maximum (windows sharing one add up)."""
        raise NotImplementedError("TODO: MaxPoolLayer.backward")


class FlatteningLayer(Layer):
    def forward(self, dataIn):
        """Return the H×W image as one 1×HW row; store the input."""
        raise NotImplementedError("TODO: FlatteningLayer.forward")

    def gradient(self):
        """Not graded."""
        raise NotImplementedError("TODO: FlatteningLayer.gradient (not graded)")

    def backward(self, gradIn):
        """Turn the 1×HW gradient back into the image's H×W shape (undo forward)."""
        raise NotImplementedError("TODO: FlatteningLayer.backward")
