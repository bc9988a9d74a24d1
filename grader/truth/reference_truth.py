"""The reference implementation as ground truth: trusted code, run in the grader's own process."""
from __future__ import annotations

import importlib.util
import sys
from functools import lru_cache
from types import ModuleType

import numpy as np

from grader.paths import reference_dir
from grader.assignment.spec import ClassSpec

_MODULE_NAME = "_grader_reference"


@lru_cache(maxsize=1)
def reference_module() -> ModuleType | None:
    """Import and return the reference package (once per process); None where it is not shipped (the student kit)."""
    folder = reference_dir()
    if not (folder / "__init__.py").is_file():
        return None
    spec = importlib.util.spec_from_file_location(
        _MODULE_NAME, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[_MODULE_NAME] = module
    spec.loader.exec_module(module)
    return module


def reference_class(cls: ClassSpec):
    """Return the reference class for a spec class, or None when the reference has none (a spec's own class)."""
    module = reference_module()
    if module is None:
        return None
    for name in cls.names:
        found = getattr(module, name, None)
        if isinstance(found, type):
            return found
    return None


class ReferenceTruth:
    """Values and gradients computed by the reference classes, shaped like the symbolic truth's."""

    def layer(self, cls: ClassSpec, X: np.ndarray, *, W=None, b=None, data=None):
        """Return a reference layer that has run forward(X), built as the arguments say: on `data`
        (the input layer), with W and b (a fully connected layer), or with no argument."""
        ref = reference_class(cls)
        if ref is None:
            return None
        if data is not None:
            layer = ref(data)
        elif W is not None:
            layer = ref(W.shape[0], W.shape[1])
            layer.setWeights(W)
            layer.setBiases(b)
        else:
            layer = ref()
        layer.forward(X)
        return layer

    def jacobian(self, cls: ClassSpec, X: np.ndarray, *, W=None, b=None) -> np.ndarray | None:
        """Return the reference gradient as a full per-observation Jacobian N×K×D."""
        layer = self.layer(cls, X, W=W, b=b)
        if layer is None:
            return None
        grad = np.asarray(layer.gradient(), dtype=float)
        n = X.shape[0]
        if W is not None:  # a fully connected layer: Wᵀ, one for all observations
            return np.broadcast_to(grad, (n, *grad.shape)).copy() if grad.ndim == 2 else grad
        if grad.ndim == 2:  # a diagonal
            return np.einsum("nk,kj->nkj", grad, np.eye(grad.shape[1]))
        return grad

    def objective(self, cls: ClassSpec):
        ref = reference_class(cls)
        return ref() if ref is not None else None
