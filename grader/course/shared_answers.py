"""Copying found by behaviour: the same unusual wrong answer, entry for entry, from several students.

Every student of a batch is graded on the same test points, and every wrong answer is kept as a
digest (`CheckResult.details["answer"]`: the numbers rounded to 8 significant digits, hashed).
Two students who hand in the same bug produce the same digest; two who make the same common
mistake do too, so those are left out: a right answer, a mistake the catalogue names (sign
flipped, ε missing, …), a constant answer (zeros, ones) and an answer more than a tenth of the
class shares never make a group. What is left — the same rare wrong numbers — is grouped by who
shares it, with every item the group shares such an answer on and how rare each answer is.
"""
from __future__ import annotations

from collections import Counter, defaultdict

#: A diagnosis that starts so is a measurement of this student's numbers, not a named mistake.
UNNAMED = ("off by a constant factor of",)
MOST_SHARED = 0.10  # an answer more than this share of the class gave is a common mistake, not a shared bug


def common(diagnosis: str | None) -> bool:
    """True for a named (catalogued) mistake: many students make it independently."""
    return bool(diagnosis) and not diagnosis.startswith(UNNAMED)


def groups(results) -> list[dict]:
    """Groups of students sharing rare wrong answers, the most shared first.

    Each: {"students": [...], "answers": [{"item", "check", "diagnosis", "count", "judged", "wrong"}]}:
    `count` students gave exactly this answer, of `judged` whose answer to that check was judged
    (`wrong` of them wrong)."""
    out = []
    for same_points in _by_test_points(results).values():
        out += _groups(same_points)
    return sorted(out, key=lambda g: (-len(g["answers"]), min(a["count"] for a in g["answers"]), g["students"]))


def _by_test_points(results) -> dict:
    """Results drawn from the same seed (and spec): only their answers can be compared."""
    buckets = defaultdict(list)
    for r in results:
        buckets[(r.spec, r.seed_kind, r.seed)].append(r)
    return buckets


def _groups(results) -> list[dict]:
    judged, wrong = Counter(), Counter()
    who = defaultdict(list)
    diagnosis = {}
    for r in results:
        for item in r.items:
            for c in item.checks:
                if c.outcome != "ok":  # no answer to compare: not implemented, an error, a timeout
                    continue
                key = (item.name, c.name)
                judged[key] += 1
                if c.passed:
                    continue
                wrong[key] += 1
                answer = c.details.get("answer") if isinstance(c.details, dict) else None
                if not answer or c.details.get("answer_constant") or common(c.diagnosis):
                    continue
                who[(key, answer)].append(r.submission)
                diagnosis[(key, answer)] = c.diagnosis
    by_members = defaultdict(list)
    for (key, answer), students in who.items():
        students = sorted(set(students))
        if len(students) < 2 or len(students) > max(2, MOST_SHARED * judged[key]):
            continue
        by_members[tuple(students)].append({"item": key[0], "check": key[1], "diagnosis": diagnosis[(key, answer)] or "",
                                            "count": len(students), "judged": judged[key], "wrong": wrong[key]})
    return [{"students": list(students), "answers": sorted(answers, key=lambda a: (a["item"], a["check"]))}
            for students, answers in by_members.items()]
