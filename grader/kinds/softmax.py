"""The softmax layer: row-wise softmax; gradient() is the per-observation Jacobian N×K×K (its
diagonal alone is wrong unless a spec accepts it).

Its checks are the layer checks (`grader/checking/layer_checks.py`) with an activation's hooks;
its true Jacobian is the full one.
"""
from __future__ import annotations

from grader.checking import layer_checks
from grader.checking.layer_checks import LayerKind


class Softmax(LayerKind):
    pass


LAYER = Softmax()
CHECKS = layer_checks.table("softmax")
