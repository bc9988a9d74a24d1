"""Layers: implement forward, gradient and backward from the slides.

Rows are observations: dataIn is N×D (a single observation is 1×D).
`forward` must store its input and output with setPrevIn/setPrevOut;
`gradient()` works from what forward stored; `backward(gradIn)` returns
gradIn times the layer's Jacobian (element-wise when gradient() is a diagonal).
"""
import numpy as np

from Layer import Layer


class InputLayer(Layer):
    def __init__(self, dataIn):
        """Remember the mean and the standard deviation (ddof=1) of each column of dataIn.

        A column whose standard deviation is 0 uses 1 instead, so nothing is divided by zero.
        """
        super().__init__()
        raise NotImplementedError("TODO: InputLayer.__init__: store the column means and stds (ddof=1)")

    def forward(self, dataIn):
        """Return z = (x − μ) / σ with μ, σ from the constructor's data."""
        raise NotImplementedError("TODO: InputLayer.forward: z-score dataIn")

    def gradient(self):
        """Not graded in this assignment."""
        raise NotImplementedError("TODO: InputLayer.gradient (not graded)")

    def backward(self, gradIn):
        """Not graded in this assignment."""
        raise NotImplementedError("TODO: InputLayer.backward (not graded)")


class FullyConnectedLayer(Layer):
    def __init__(self, sizeIn, sizeOut):
        """Weights W (sizeIn × sizeOut) and biases b (1 × sizeOut), small random values."""
        super().__init__()
        raise NotImplementedError("TODO: FullyConnectedLayer.__init__: random W and b in ±1e-4")

    def getWeights(self):
        raise NotImplementedError("TODO: FullyConnectedLayer.getWeights")

    def setWeights(self, weights):
        raise NotImplementedError("TODO: FullyConnectedLayer.setWeights")

    def getBiases(self):
        raise NotImplementedError("TODO: FullyConnectedLayer.getBiases")

    def setBiases(self, biases):
        raise NotImplementedError("TODO: FullyConnectedLayer.setBiases")

    def forward(self, dataIn):
        """Return h = xW + b (N×K) and store input and output."""
        raise NotImplementedError("TODO: FullyConnectedLayer.forward")

    def gradient(self):
        """Return ∂h/∂x: ∂h_j/∂x_i = W_ij, so the Jacobian is Wᵀ (K×D)."""
        raise NotImplementedError("TODO: FullyConnectedLayer.gradient")

    def backward(self, gradIn):
        """Return gradIn · Wᵀ (N×D)."""
        raise NotImplementedError("TODO: FullyConnectedLayer.backward")

    def updateWeights(self, gradIn, eta):
        """Move W and b against the gradient: W ← W − η Xᵀ·gradIn / N (X the stored input, N its rows)
        and b ← b − η · the column means of gradIn (1×K)."""
        raise NotImplementedError("TODO: FullyConnectedLayer.updateWeights")


class LinearLayer(Layer):
    def forward(self, dataIn):
        """Return g(z) = z."""
        raise NotImplementedError("TODO: LinearLayer.forward")

    def gradient(self):
        """Return ∂g/∂z: the identity, or its diagonal of ones (N×K)."""
        raise NotImplementedError("TODO: LinearLayer.gradient")

    def backward(self, gradIn):
        """Return gradIn times the gradient."""
        raise NotImplementedError("TODO: LinearLayer.backward")


class ReLuLayer(Layer):
    def forward(self, dataIn):
        """Return g(z) = max(0, z) element-wise."""
        raise NotImplementedError("TODO: ReLuLayer.forward")

    def gradient(self):
        """Return ∂g_j/∂z_j = 1 where z_j ≥ 0, else 0 (diagonal N×K or Jacobian N×K×K)."""
        raise NotImplementedError("TODO: ReLuLayer.gradient")

    def backward(self, gradIn):
        """Return gradIn times the gradient."""
        raise NotImplementedError("TODO: ReLuLayer.backward")


class LogisticSigmoidLayer(Layer):
    def forward(self, dataIn):
        """Return g(z) = 1 / (1 + e^(−z)) element-wise."""
        raise NotImplementedError("TODO: LogisticSigmoidLayer.forward")

    def gradient(self):
        """Return ∂g_j/∂z_j = g(z_j)(1 − g(z_j)) + ε."""
        raise NotImplementedError("TODO: LogisticSigmoidLayer.gradient")

    def backward(self, gradIn):
        """Return gradIn times the gradient."""
        raise NotImplementedError("TODO: LogisticSigmoidLayer.backward")


class TanhLayer(Layer):
    def forward(self, dataIn):
        """Return g(z) = (e^z − e^(−z)) / (e^z + e^(−z)) element-wise."""
        raise NotImplementedError("TODO: TanhLayer.forward")

    def gradient(self):
        """Return ∂g_j/∂z_j = 1 − g(z_j)² + ε."""
        raise NotImplementedError("TODO: TanhLayer.gradient")

    def backward(self, gradIn):
        """Return gradIn times the gradient."""
        raise NotImplementedError("TODO: TanhLayer.backward")


class SoftmaxLayer(Layer):
    def forward(self, dataIn):
        """Return g_j(z) = e^(z_j) / Σ_i e^(z_i) for each row (subtract the row's max first)."""
        raise NotImplementedError("TODO: SoftmaxLayer.forward")

    def gradient(self):
        """Return the N×K×K Jacobians: ∂g_j/∂z_i = g_i((i == j) − g_j)."""
        raise NotImplementedError("TODO: SoftmaxLayer.gradient")

    def backward(self, gradIn):
        """Return, for each row n, gradIn[n] @ J[n]."""
        raise NotImplementedError("TODO: SoftmaxLayer.backward")
