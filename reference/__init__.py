"""The instructor's reference implementation of the assignment, one class per slide.

It is trusted code: the grader imports it in its own process as the second ground truth
(beside the SymPy derivation), and `grade reference/` must score full marks.
"""
from .cnn import ConvolutionalLayer, FlatteningLayer, MaxPoolLayer
from .layer import Layer
from .layers import (
    FullyConnectedLayer,
    InputLayer,
    LinearLayer,
    LogisticSigmoidLayer,
    ReLuLayer,
    SoftmaxLayer,
    TanhLayer,
)
from .objectives import EPSILON, CrossEntropy, LogLoss, SquaredError

__all__ = [
    "ConvolutionalLayer",
    "EPSILON",
    "FlatteningLayer",
    "MaxPoolLayer",
    "CrossEntropy",
    "FullyConnectedLayer",
    "InputLayer",
    "Layer",
    "LinearLayer",
    "LogLoss",
    "LogisticSigmoidLayer",
    "ReLuLayer",
    "SoftmaxLayer",
    "SquaredError",
    "TanhLayer",
]
