"""Layers of the slides: input, fully connected and the activations, each with its gradient rule."""
import numpy as np

from .layer import Layer


def _as_batch(X):
    """Return X as a float N×D array (a single observation becomes 1×D), never a view of X."""
    X = np.array(X, dtype=float)
    return X.reshape(1, -1) if X.ndim < 2 else X


class InputLayer(Layer):
    """z = (x − μ) / σ with μ and σ (ddof=1) of the data given to the constructor; σ = 0 counts as 1."""

    def __init__(self, dataIn):
        super().__init__()
        dataIn = _as_batch(dataIn)
        self.meanX = dataIn.mean(axis=0, keepdims=True)
        std = dataIn.std(axis=0, ddof=1, keepdims=True) if dataIn.shape[0] > 1 else np.zeros_like(self.meanX)
        self.stdX = np.where(std == 0, 1.0, std)

    def forward(self, dataIn):
        dataIn = _as_batch(dataIn)
        self.setPrevIn(dataIn)
        out = (dataIn - self.meanX) / self.stdX
        self.setPrevOut(out)
        return out

    def gradient(self):
        """∂z/∂x = 1/σ per feature (the input layer is not back-propagated through in this course)."""
        n = np.asarray(self.getPrevIn()).shape[0]
        return np.tile(1.0 / self.stdX, (n, 1))


class FullyConnectedLayer(Layer):
    """h = xW + b with W of shape D×K and b of shape 1×K; ∂h/∂x = Wᵀ."""

    def __init__(self, sizeIn, sizeOut):
        super().__init__()
        rng = np.random.default_rng()
        self.weights = rng.uniform(-1e-4, 1e-4, size=(sizeIn, sizeOut))
        self.biases = rng.uniform(-1e-4, 1e-4, size=(1, sizeOut))

    def getWeights(self):
        return self.weights

    def setWeights(self, weights):
        self.weights = np.array(weights, dtype=float)

    def getBiases(self):
        return self.biases

    def setBiases(self, biases):
        self.biases = np.array(biases, dtype=float).reshape(1, -1)

    def forward(self, dataIn):
        dataIn = _as_batch(dataIn)
        self.setPrevIn(dataIn)
        out = dataIn @ self.weights + self.biases
        self.setPrevOut(out)
        return out

    def gradient(self):
        """∂h_j/∂x_i = W_ij, so the K×D Jacobian is Wᵀ, the same for every observation."""
        return self.weights.T.copy()

    def backward(self, gradIn):
        return np.asarray(gradIn, dtype=float) @ self.gradient()

    def updateWeights(self, gradIn, eta=0.001, t=None, p1=0.9, p2=0.999, delta=1e-8):
        """W ← W − η ∂J/∂W and b ← b − η ∂J/∂b, with ∂J/∂W = Xᵀδ/N (X the stored input) and ∂J/∂b the column means of δ.

        Given t (the `adam` spec), step t of Adam instead, the moments kept on the layer:
        m ← p1 m + (1 − p1) g, v ← p2 v + (1 − p2) g², θ ← θ − η (m/(1 − p1ᵗ)) / (√(v/(1 − p2ᵗ)) + δ), for W and b.
        """
        gradIn = np.asarray(gradIn, dtype=float)
        dJdW = self.getPrevIn().T @ gradIn / gradIn.shape[0]
        dJdb = np.mean(gradIn, axis=0, keepdims=True)
        if t is None:
            self.weights = self.weights - eta * dJdW
            self.biases = self.biases - eta * dJdb
            return
        if t == 1 or not hasattr(self, "moments"):
            self.moments = {name: (np.zeros_like(g), np.zeros_like(g)) for name, g in (("weights", dJdW), ("biases", dJdb))}
        for name, g in (("weights", dJdW), ("biases", dJdb)):
            m, v = self.moments[name]
            m, v = p1 * m + (1 - p1) * g, p2 * v + (1 - p2) * g * g
            self.moments[name] = (m, v)
            step = (m / (1 - p1 ** t)) / (np.sqrt(v / (1 - p2 ** t)) + delta)
            setattr(self, name, getattr(self, name) - eta * step)


class LinearLayer(Layer):
    """g(z) = z; g'(z) = 1 (the Jacobian is the identity)."""

    def forward(self, dataIn):
        dataIn = _as_batch(dataIn)
        self.setPrevIn(dataIn)
        self.setPrevOut(dataIn.copy())
        return self.getPrevOut()

    def gradient(self):
        return np.ones_like(self.getPrevIn())


class ReLuLayer(Layer):
    """g(z) = max(0, z); g'(z) = 1 where z ≥ 0, else 0."""

    def forward(self, dataIn):
        dataIn = _as_batch(dataIn)
        self.setPrevIn(dataIn)
        out = np.maximum(0.0, dataIn)
        self.setPrevOut(out)
        return out

    def gradient(self):
        return (self.getPrevIn() >= 0).astype(float)


class LogisticSigmoidLayer(Layer):
    """g(z) = 1 / (1 + e^(−z)); g'(z) = g(z)(1 − g(z)) + ε."""

    def forward(self, dataIn):
        dataIn = _as_batch(dataIn)
        self.setPrevIn(dataIn)
        # Written through e^(−|z|) so that no exponential overflows at large |z|.
        e = np.exp(-np.abs(dataIn))
        out = np.where(dataIn >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
        self.setPrevOut(out)
        return out

    def gradient(self):
        g = self.getPrevOut()
        return g * (1.0 - g) + 1e-7


class TanhLayer(Layer):
    """g(z) = (e^z − e^(−z)) / (e^z + e^(−z)); g'(z) = 1 − g(z)² + ε."""

    def forward(self, dataIn):
        dataIn = _as_batch(dataIn)
        self.setPrevIn(dataIn)
        out = np.tanh(dataIn)  # the slides' quotient, computed without overflow
        self.setPrevOut(out)
        return out

    def gradient(self):
        g = self.getPrevOut()
        return 1.0 - g * g + 1e-7


class SoftmaxLayer(Layer):
    """g_j(z) = e^(z_j) / Σ_i e^(z_i) per row; ∂g_j/∂z_i = g_i((i == j) − g_j), a K×K matrix per row."""

    def forward(self, dataIn):
        dataIn = _as_batch(dataIn)
        self.setPrevIn(dataIn)
        # Shifting each row by its own max changes nothing mathematically and keeps e^z finite.
        e = np.exp(dataIn - dataIn.max(axis=1, keepdims=True))
        out = e / e.sum(axis=1, keepdims=True)
        self.setPrevOut(out)
        return out

    def gradient(self):
        g = self.getPrevOut()
        return np.einsum("ni,ij->nij", g, np.eye(g.shape[1])) - np.einsum("ni,nj->nij", g, g)
