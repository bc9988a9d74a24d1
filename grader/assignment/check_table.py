"""What a check is, as data: its name, weight and role, nothing that runs.

Each kind declares its table of checks in `grader.kinds` (the layers share `LAYER_CHECKS`);
the spec validates hidden check names against those tables, and each kind's module attaches a
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


#: The checks of every layer kind but the input layer (`grader.kinds` declares each kind's table).
LAYER_CHECKS = {
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
