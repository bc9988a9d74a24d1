"""Objective functions of the slides: value `eval(Y, Yhat)` and gradient ∂J/∂Ŷ."""
import numpy as np

EPSILON = 1e-7


def _pair(Y, Yhat):
    Y = np.array(Y, dtype=float)
    Yhat = np.array(Yhat, dtype=float)
    return (Y.reshape(1, -1), Yhat.reshape(1, -1)) if Yhat.ndim < 2 else (Y, Yhat)


class SquaredError:
    """J = mean over all entries of (y − ŷ)²; ∂J/∂ŷ = −2(y − ŷ), per entry (not divided by N)."""

    def eval(self, Y, Yhat):
        Y, Yhat = _pair(Y, Yhat)
        return float(np.mean((Y - Yhat) * (Y - Yhat)))

    def gradient(self, Y, Yhat):
        Y, Yhat = _pair(Y, Yhat)
        return -2 * (Y - Yhat)


class LogLoss:
    """J = −mean of y ln(ŷ + ε) + (1 − y) ln(1 − ŷ + ε); ∂J/∂ŷ = −(y − ŷ) / (ŷ(1 − ŷ) + ε)."""

    def eval(self, Y, Yhat):
        Y, Yhat = _pair(Y, Yhat)
        return float(-np.mean(Y * np.log(Yhat + EPSILON) + (1 - Y) * np.log(1 - Yhat + EPSILON)))

    def gradient(self, Y, Yhat):
        Y, Yhat = _pair(Y, Yhat)
        return -(Y - Yhat) / (Yhat * (1 - Yhat) + EPSILON)


class CrossEntropy:
    """J = −mean over observations of Σ_k y_k ln(ŷ_k + ε); ∂J/∂ŷ = −y / (ŷ + ε)."""

    def eval(self, Y, Yhat):
        Y, Yhat = _pair(Y, Yhat)
        return float(-np.mean(np.sum(Y * np.log(Yhat + EPSILON), axis=1)))

    def gradient(self, Y, Yhat):
        Y, Yhat = _pair(Y, Yhat)
        return -Y / (Yhat + EPSILON)
