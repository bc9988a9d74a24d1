"""The checks of each kind of item, as data: names, weights and roles, nothing that runs.

The spec validates hidden check names against this table and `grader/checks.py` attaches a
function to every entry, so the data layer (spec) and the logic layer (checks) both import
from here and neither from the other.

Roles: a *value* check judges the numbers the method returns. An *auxiliary* check judges
how the method behaves (it leaves its input alone, it stores what `gradient()` needs): it can
take points away but never give them, so it pays only when some value check of the item passed
(`ItemResult.earned`). An answer that did no work fails every value check, so it earns nothing
from the auxiliary ones either.
"""
from __future__ import annotations

from dataclasses import dataclass

VALUE, AUXILIARY = "value", "auxiliary"


@dataclass(frozen=True)
class CheckDef:
    """One check of an item: its name (as reports show it), its share of the item, its role."""

    name: str
    weight: float
    role: str = VALUE

    @property
    def auxiliary(self) -> bool:
        return self.role == AUXILIARY


_LAYER = {
    "forward": (
        CheckDef("values", 0.45),
        CheckDef("single_observation", 0.15),
        CheckDef("edges", 0.2),
        CheckDef("stores_input_output", 0.1, AUXILIARY),
        CheckDef("input_not_mutated", 0.1, AUXILIARY),
    ),
    "gradient": (
        CheckDef("jacobian", 0.45),
        CheckDef("single_observation", 0.15),
        CheckDef("finite_differences", 0.25),
        CheckDef("edges", 0.15),
    ),
    "backward": (
        CheckDef("chain_rule", 0.45),
        CheckDef("single_observation", 0.15),
        CheckDef("after_forward", 0.15),
        CheckDef("edges", 0.1),
        CheckDef("gradIn_not_mutated", 0.15, AUXILIARY),
    ),
}

#: (kind, method) → the checks of such an item, in report order.
CHECK_TABLE: dict[tuple[str, str], tuple[CheckDef, ...]] = {
    **{(kind, method): checks for kind in ("elementwise", "softmax", "fully_connected") for method, checks in _LAYER.items()},
    # A layer like the others: the same two auxiliary checks as a layer's forward (0.1 each); the
    # storage check's 0.1 comes from the batch values (0.4 → 0.3), so that the constant column
    # keeps the 0.2 of a layer's edges and new data (the constructor's μ, σ) its own 0.2.
    ("input", "forward"): (
        CheckDef("values", 0.3),
        CheckDef("new_data", 0.2),
        CheckDef("constant_column", 0.2),
        CheckDef("single_observation", 0.1),
        CheckDef("stores_input_output", 0.1, AUXILIARY),
        CheckDef("input_not_mutated", 0.1, AUXILIARY),
    ),
    ("objective", "eval"): (
        CheckDef("values", 0.5),
        CheckDef("single_observation", 0.2),
        CheckDef("edges", 0.2),
        CheckDef("inputs_not_mutated", 0.1, AUXILIARY),
    ),
    ("objective", "gradient"): (
        CheckDef("values", 0.45),
        CheckDef("single_observation", 0.15),
        CheckDef("finite_differences", 0.2),
        CheckDef("edges", 0.1),
        CheckDef("inputs_not_mutated", 0.1, AUXILIARY),
    ),
}


def check_names() -> set[str]:
    """Every check name of the table (what a spec's [hidden] checks may name)."""
    return {c.name for checks in CHECK_TABLE.values() for c in checks}
