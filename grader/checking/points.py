"""Deterministic test points: float64, odd non-square shapes, clear of every kink.

Each item draws from its own generator seeded by (seed, item name), so the points of one item
do not depend on which other items run. Shapes are N=7 observations, D=5 inputs, K=3 outputs
by default, so that a transposed matrix can never have the right shape by accident.
"""
from __future__ import annotations

import zlib

import numpy as np

from grader.assignment.spec import ClassSpec

N, D, K = 7, 5, 3
KINK_MARGIN = 0.05


def rng_for(seed: int, label: str) -> np.random.Generator:
    return np.random.default_rng([seed & 0xFFFFFFFF, zlib.crc32(label.encode())])


def layer_input(rng, cls: ClassSpec, n: int, k: int) -> np.ndarray:
    """Inputs for an activation in its domain, never within KINK_MARGIN of a kink."""
    low, high = cls.options.domain  # (-3, 3) but where an element-wise class says otherwise
    X = rng.uniform(low, high, size=(n, k))
    for kink in cls.options.kinks:
        near = np.abs(X - kink) < KINK_MARGIN
        X[near] = kink + np.where(X[near] >= kink, 1, -1) * (KINK_MARGIN + rng.uniform(0.1, 0.5, size=near.sum()))
    return X


def upstream(rng, n: int, k: int) -> np.ndarray:
    """A random δ: an all-ones δ would hide softmax mistakes, since Jᵀ·1 = 0 there."""
    return rng.normal(size=(n, k))


def weights(rng, d: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.normal(size=(d, k)), rng.normal(size=(1, k))


def input_data(rng, n: int, d: int) -> np.ndarray:
    """Data for an input layer: columns with their own means and spreads."""
    return rng.normal(loc=rng.uniform(-5, 5, size=d), scale=rng.uniform(0.5, 3, size=d), size=(n, d))


def objective_pair(rng, cls: ClassSpec, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Targets and estimates of the kinds the objective expects."""
    if cls.options.targets == "onehot":
        Y = np.eye(k)[rng.integers(0, k, size=n)]
    elif cls.options.targets == "binary":
        Y = rng.integers(0, 2, size=(n, k)).astype(float)
    else:
        Y = rng.normal(size=(n, k))
    if cls.options.estimates == "distribution":
        e = np.exp(rng.normal(size=(n, k)))
        Yhat = e / e.sum(axis=1, keepdims=True)
    elif cls.options.estimates == "probability":
        Yhat = rng.uniform(0.05, 0.95, size=(n, k))
    else:
        Yhat = rng.normal(size=(n, k))
    return Y, Yhat


def objective_edges(cls: ClassSpec, variant: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Targets and estimates with ŷ exactly 0 and 1, right and wrong, in the same call as ordinary
    ones (the last row): an answer that is constant, or zero, cannot match where the truth is not.
    Variant 1 has the same extreme entries and other ordinary ones, so that J's ε-dependent part
    cancels from the difference of the two."""
    if cls.options.estimates == "real":
        Y = np.array([[1e3, -2.0, 0.0], [0.0, 5.0, -1e3], [7.0, 0.5, 1e-9]])
        Yhat = np.array([[-1e3, 3.0, 0.0], [1e-9, 5.0, 1e3], [-7.0, 0.5, 0.0]])
        last = [2.5, -1.5, 3.0]
    elif cls.options.targets == "onehot":
        Y = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
        Yhat = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.2, 0.7, 0.1]])
        last = [0.5, 0.3, 0.2]
    else:
        Y = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
        Yhat = np.array([[0.0, 1.0, 1.0], [0.0, 0.5, 1.0], [0.3, 0.8, 0.6]])
        last = [0.55, 0.25, 0.85]
    if variant:
        Yhat[-1] = last
    return Y, Yhat


def edge_input(cls: ClassSpec) -> np.ndarray:
    """Large inputs (e^z overflows in a naive formula) mixed with ordinary ones in every row, so
    that a constant answer cannot match (softmax has its own: `grader/kinds/softmax.py`)."""
    return np.array([[1000.0, -1000.0, 40.0, 0.7], [-40.0, 710.0, -745.0, -1.3]])
