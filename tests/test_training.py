"""Network.training (grader/checking/training.py): the student's own classes trained beside the truth."""
from pathlib import Path

import pytest

from grader.grade import grade_submission
from grader.outputs.html_report import render_report
from grader.outputs.loss_curves import loss_curves_svg
from grader.paths import reference_dir
from grader.sandbox import Limits

SUBMISSIONS = Path(__file__).resolve().parent / "fixtures" / "submissions"
FAST = Limits(call_timeout=2.0, total_timeout=120.0)


@pytest.fixture(scope="module")
def graded():
    cache = {}

    def get(path):
        if path not in cache:
            cache[path] = grade_submission(path, sandbox="process", limits=FAST)
        return cache[path]
    return get


def test_a_right_submission_learns_as_the_truth_does(graded):
    result = graded(reference_dir())
    item = result.item("Network.training")
    assert item.max_score == 0 and item.status == "passed"
    assert [c.name for c in item.checks] == ["classifier", "binary"]
    for check in item.checks:
        curves = check.details["curves"]
        assert len(curves["truth"]) == 24 and curves["truth"] == pytest.approx(curves["yours"], rel=1e-6)
        assert curves["truth"][-1] < 0.5 * curves["truth"][0]  # the truth learns: the diagnostic means something
        assert "your network learns as the truth does" in check.note
    page = render_report(result)
    assert page.count("loss per epoch, the truth&#39;s (solid) and yours (dashed)") == 2 and "parts at epoch" not in page


@pytest.mark.parametrize("fixture,diagnosis", [
    ("fc_update_ascent", "gradient ascent"),
    ("fc_update_summed", "summed instead of averaged"),
    ("fc_update_bias_not_updated", "bias not updated"),
])
def test_a_wrong_update_names_the_first_epoch_the_layer_and_the_mistake(fixture, diagnosis, graded):
    result = graded(SUBMISSIONS / fixture)
    item = result.item("Network.training")
    assert item.status == "failed" and item.score == 0
    for check in item.checks:
        assert not check.passed and diagnosis in check.diagnosis
        assert check.message.startswith("epoch 1: W and b after FullyConnectedLayer.updateWeights")
        assert check.details["curves"]["yours"] != pytest.approx(check.details["curves"]["truth"])
    assert "parts at epoch 2" in render_report(result)  # the first update shows in the second epoch's loss


def test_a_wrong_backward_elsewhere_is_located_there(graded):
    item = graded(SUBMISSIONS / "softmax_diagonal_only").item("Network.training")
    classifier, binary = item.checks
    assert not classifier.passed and classifier.message.startswith("epoch 1: δ departs first at SoftmaxLayer.backward (layer 5 of 5")
    assert binary.passed  # no softmax in it


def test_the_curves_read_without_colour_and_mark_where_they_part():
    svg = loss_curves_svg([1.0, 0.8, 0.6, 0.5], [1.0, 0.8, 0.9, float("nan")])
    assert svg.startswith("<svg") and 'stroke-dasharray="6,3"' in svg and "parts at epoch 3" in svg
    assert loss_curves_svg([], []) == ""
