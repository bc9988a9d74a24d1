"""Objective functions: implement eval (a number) and gradient (∂J/∂Ŷ, N×K)."""
import numpy as np

EPSILON = 1e-7


class SquaredError:
    def eval(self, Y, Yhat):
        """Return J = mean over all entries of (y − ŷ)²."""
        raise NotImplementedError("TODO: SquaredError.eval")

    def gradient(self, Y, Yhat):
        """Return ∂J/∂ŷ = −2(y − ŷ), N×K, not divided by N."""
        raise NotImplementedError("TODO: SquaredError.gradient")


class LogLoss:
    def eval(self, Y, Yhat):
        """Return J = −mean of y ln(ŷ + ε) + (1 − y) ln(1 − ŷ + ε)."""
        raise NotImplementedError("TODO: LogLoss.eval")

    def gradient(self, Y, Yhat):
        """Return ∂J/∂ŷ = −(y − ŷ) / (ŷ(1 − ŷ) + ε)."""
        raise NotImplementedError("TODO: LogLoss.gradient")


class CrossEntropy:
    def eval(self, Y, Yhat):
        """Return J = −mean over observations of Σ_k y_k ln(ŷ_k + ε)."""
        raise NotImplementedError("TODO: CrossEntropy.eval")

    def gradient(self, Y, Yhat):
        """Return ∂J/∂ŷ = −y / (ŷ + ε)."""
        raise NotImplementedError("TODO: CrossEntropy.gradient")
