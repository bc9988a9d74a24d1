"""The convolutional network's layers (the `cnn` spec): convolution, max pooling, flattening.

Images are H×W (one image, the course's) or N×H×W (a batch); every method takes either.
"""
import numpy as np

from .layer import Layer


def _correlate(X, K):
    """The valid 2-D cross-correlation of one H×W image with a kH×kW matrix."""
    kh, kw = K.shape
    rows, cols = X.shape[0] - kh + 1, X.shape[1] - kw + 1
    windows = np.lib.stride_tricks.sliding_window_view(X, (kh, kw))[:rows, :cols]
    return np.einsum("ijab,ab->ij", windows, K)


def _each(fn, X, *rest):
    """fn on each image of a batch, or on the one image."""
    if X.ndim == 3:
        return np.stack([fn(x, *(r[i] for r in rest)) for i, x in enumerate(X)])
    return fn(X, *rest)


class ConvolutionalLayer(Layer):
    """forward: X ⋆ K (valid cross-correlation); backward: pad(G) ⋆ rot180(K); ∂J/∂K = X ⋆ G."""

    def __init__(self, kernelHeight, kernelWidth):
        super().__init__()
        self.kernel = np.random.default_rng().uniform(-1e-4, 1e-4, size=(kernelHeight, kernelWidth))

    def getKernel(self):
        return self.kernel

    def setKernel(self, kernel):
        self.kernel = np.array(kernel, dtype=float)

    def forward(self, dataIn):
        dataIn = np.array(dataIn, dtype=float)
        self.setPrevIn(dataIn)
        out = _each(lambda x: _correlate(x, self.kernel), dataIn)
        self.setPrevOut(out)
        return out

    def gradient(self):
        """Not used: backward applies the rule directly."""
        return None

    def backward(self, gradIn):
        gradIn = np.asarray(gradIn, dtype=float)
        kh, kw = self.kernel.shape
        turned = np.rot90(self.kernel, 2)
        return _each(lambda g: _correlate(np.pad(g, ((kh - 1, kh - 1), (kw - 1, kw - 1))), turned), gradIn)

    def updateWeights(self, gradIn, eta):
        gradIn = np.asarray(gradIn, dtype=float)
        dJdK = _each(_correlate, self.getPrevIn(), gradIn)
        if dJdK.ndim == 3:
            dJdK = dJdK.sum(axis=0)
        self.kernel = self.kernel - eta * dJdK


class MaxPoolLayer(Layer):
    """forward: each window's maximum; backward: each output's gradient to its window's maximum (added up)."""

    def __init__(self, poolSize, stride):
        super().__init__()
        self.poolSize, self.stride = poolSize, stride

    def _windows(self, shape):
        p, s = self.poolSize, self.stride
        for i in range((shape[0] - p) // s + 1):
            for j in range((shape[1] - p) // s + 1):
                yield (i, j), i * s, j * s

    def _pool(self, x):
        p = self.poolSize
        out = np.zeros(((x.shape[0] - p) // self.stride + 1, (x.shape[1] - p) // self.stride + 1))
        for index, r, c in self._windows(x.shape):
            out[index] = x[r:r + p, c:c + p].max()
        return out

    def _route(self, x, g):
        p = self.poolSize
        out = np.zeros(x.shape)
        for index, r, c in self._windows(x.shape):
            a, b = np.unravel_index(np.argmax(x[r:r + p, c:c + p]), (p, p))
            out[r + a, c + b] += g[index]
        return out

    def forward(self, dataIn):
        dataIn = np.array(dataIn, dtype=float)
        self.setPrevIn(dataIn)
        out = _each(self._pool, dataIn)
        self.setPrevOut(out)
        return out

    def gradient(self):
        return None

    def backward(self, gradIn):
        return _each(self._route, self.getPrevIn(), np.asarray(gradIn, dtype=float))


class FlatteningLayer(Layer):
    """forward: each image as one row, row-major (H×W → 1×HW, N×H×W → N×HW); backward: the inverse."""

    def forward(self, dataIn):
        dataIn = np.array(dataIn, dtype=float)
        self.setPrevIn(dataIn)
        out = dataIn.reshape(1 if dataIn.ndim == 2 else dataIn.shape[0], -1)
        self.setPrevOut(out)
        return out

    def gradient(self):
        return None

    def backward(self, gradIn):
        return np.asarray(gradIn, dtype=float).reshape(np.shape(self.getPrevIn()))
