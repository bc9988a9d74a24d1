"""`Band`: the truth at the spec's ε and the interval every accepted way of writing ε spans."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Band:
    """The truth at the spec's ε, and the interval every accepted ε (and way of writing ε) spans."""

    nominal: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
