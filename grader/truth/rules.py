"""The rules the reports show (LaTeX, MathML, one line of Unicode), from memory, the disk cache or derived.

Deriving them takes SymPy (`rule_derivation.py`), which only a cold cache imports: a warm run
reads them back as plain text. Cached by content, not by object.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass

from grader import cache
from grader.assignment.spec import ClassSpec


@dataclass(frozen=True)
class Rule:
    """One rule as the reports show it: words from the spec, the formula in LaTeX, MathML and one line of Unicode."""

    text: str
    latex: str
    mathml: str
    plain: str = ""


def rules_for(cls: ClassSpec) -> dict[str, Rule]:
    """Return {method: Rule}: the general indexed rule, derived from the class's definition.

    Cached by content, not by object: a spec sent to another process (a pool, a dask worker)
    arrives as new objects, and deriving the rules again costs more than grading.
    """
    written = tuple(sorted(cls.rule_formulas.items()))
    return _cached_rules(cls.kind, cls.formula, tuple(sorted(cls.rules.items())),
                         getattr(cls.options, "reduction", "mean"), written)


@functools.lru_cache(maxsize=None)
def _cached_rules(kind: str, formula: str | None, rules: tuple, reduction: str, written: tuple = ()) -> dict[str, Rule]:
    """The rules from memory, from disk (keyed by the definition and the code that prints them) or derived and stored."""
    key = cache.key("rules", json.dumps([kind, formula, rules, reduction, written]))
    found = cache.read(key, ".rules.json", lambda text, _: {m: Rule(**r) for m, r in json.loads(text).items()})
    if found is None:
        found = _rules(kind, formula, rules, reduction, written)
        cache.write(key, ".rules.json", json.dumps({m: dataclasses.asdict(r) for m, r in found.items()}))
    return found


def _rules(kind: str, formula: str | None, rules: tuple, reduction: str, written: tuple = ()) -> dict[str, Rule]:
    from grader.truth.rule_derivation import derive_rules

    return {method: Rule(**fields) for method, fields in derive_rules(kind, formula, rules, reduction, written).items()}
