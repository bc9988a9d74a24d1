"""Scores derive from checks: auxiliary checks pay only when a value check of the item passed."""
import pytest

from grader.checking.results import CheckResult, ItemResult, SubmissionResult


def item(*checks):
    return ItemResult("TanhLayer.forward", 4.0, checks=list(checks))


def test_auxiliary_checks_pay_nothing_when_no_value_check_passed():
    trivial = item(CheckResult("values", False, 0.8), CheckResult("input_not_mutated", True, 0.2, auxiliary=True))
    assert trivial.score == 0 and trivial.earned(trivial.checks[1]) == 0 and trivial.status == "failed"


def test_auxiliary_checks_pay_in_full_beside_a_passing_value_check_and_cost_when_they_fail():
    right = item(CheckResult("values", True, 0.6), CheckResult("edges", False, 0.2), CheckResult("input_not_mutated", True, 0.2, auxiliary=True))
    assert right.score == pytest.approx(3.2)
    mutating = item(CheckResult("values", True, 0.8), CheckResult("input_not_mutated", False, 0.2, auxiliary=True))
    assert mutating.score == pytest.approx(3.2) and mutating.status == "partial"


def test_the_json_round_trip_keeps_the_auxiliary_role_and_so_the_score():
    result = SubmissionResult("s", items=[item(CheckResult("values", False, 0.8), CheckResult("stores", True, 0.2, auxiliary=True))])
    data = result.to_dict()
    assert data["items"][0]["checks"][1] == {"name": "stores", "passed": True, "score": 0.0, "max_score": 0.2, "message": "",
                                             "auxiliary": True}
    again = SubmissionResult.from_dict(data)
    assert again.score == 0 and again.items[0].checks[1].auxiliary


def test_feedback_says_a_note_once():
    note = "your forward() computes in float32"
    result = item(CheckResult("values", True, 0.5, note=note), CheckResult("edges", False, 0.5, message="bad", note=note))
    assert result.feedback.count(note) == 1
