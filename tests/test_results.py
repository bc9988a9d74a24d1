"""Scores derive from checks: auxiliary checks pay only when a value check of the item passed."""
import re

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


def _not_implemented(name, points):
    return ItemResult(name, points, [CheckResult("values", False, 1.0, f"{name}() raises NotImplementedError", outcome="not_implemented")])


def test_on_a_template_fix_first_says_where_to_start_in_the_assignments_order():
    # the bare template: the hardest item (6 points) is not where a student starts
    bare = SubmissionResult("template", [_not_implemented("SquaredError.eval", 3), _not_implemented("SoftmaxLayer.gradient", 6)])
    assert bare.fix_first == ("Start with SquaredError.eval: it comes first in the assignment and is not implemented yet "
                              "(1 more item to implement after it, in the assignment's order).")
    # half done: the implemented items are right, so the next one in order
    half = SubmissionResult("half", [ItemResult("SquaredError.eval", 3, [CheckResult("values", True, 1.0)]),
                                     _not_implemented("LogLoss.eval", 3), _not_implemented("SoftmaxLayer.gradient", 6)])
    assert half.fix_first.startswith("Start with LogLoss.eval: it comes first")
    # a wrong answer among them: fix what is wrong, the most points first
    wrong = SubmissionResult("wrong", [_not_implemented("SquaredError.eval", 3),
                                       ItemResult("LogLoss.eval", 4, [CheckResult("values", False, 1.0, "Mismatched elements: 1 / 1")])])
    assert wrong.fix_first.startswith("Fix first: LogLoss.eval (4.00 points lost, failed)")


def test_an_item_the_instructor_credited_is_not_fix_first_and_says_it_was_credited():
    from grader.outputs.html_report import render_report, render_summary
    from grader.outputs.text_report import table

    credited = ItemResult("SoftmaxLayer.gradient", 6, [CheckResult("jacobian", False, 1.0, "Mismatched elements: 3 / 9")],
                          adjustments=[{"kind": "set", "points": 6.0, "comment": "regrade: the slides' sign", "shown": "set to 6.00"}])
    other = ItemResult("TanhLayer.gradient", 4, [CheckResult("jacobian", False, 1.0, "Mismatched elements: 1 / 9")])
    result = SubmissionResult("alice", [credited, other])
    assert credited.status == "failed" and credited.score == 6  # the checks' verdict stays, the points move
    assert result.fix_first.startswith("Fix first: TanhLayer.gradient")
    alone = SubmissionResult("bob", [credited])
    assert alone.fix_first == "Nothing to fix: every item has full marks."
    page = render_report(result)
    assert "credited by the instructor</span>" in page and "Adjusted by the instructor: set to 6.00" in page
    assert re.search(r"\nSoftmaxLayer.gradient +6.00/6.00 +credited by the instructor ", table(result, width=140))
    summary = render_summary([result])
    assert 'title="credited by the instructor">✎ 6.0</td>' in summary
    assert 'data-value="6.0">✗' not in summary
