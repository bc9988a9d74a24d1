"""Network.training (grader/checking/training.py): the student's own classes trained beside the truth."""
from pathlib import Path

import numpy as np
import pytest

from grader.checking import training
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
        assert len(curves["truth"]) == training.EPOCHS and curves["truth"] == pytest.approx(curves["yours"], rel=1e-6)
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


def _reference_with_update(tmp_path, before: str):
    """reference/ whose FullyConnectedLayer.updateWeights first runs `before` (with `calls`, its calls so far on this layer)."""
    import shutil

    folder = tmp_path / "submission"
    shutil.copytree(reference_dir(), folder, ignore=shutil.ignore_patterns("__pycache__"))
    layers = folder / "layers.py"
    head = '        gradIn = np.asarray(gradIn, dtype=float)\n        dJdW = self.getPrevIn().T @ gradIn / gradIn.shape[0]\n'
    text = layers.read_text()
    assert head in text
    layers.write_text(text.replace(head, "        calls = self.__dict__['calls'] = self.__dict__.get('calls', 0) + 1\n"
                                         f"        {before}\n" + head))
    return folder


def test_a_step_going_wrong_after_the_read_back_epochs_is_located_at_its_epoch(tmp_path):
    # epochs 3 on are asked in one round trip each: what departs there is still named at its epoch and layer
    folder = _reference_with_update(tmp_path, "eta = eta / 2 if calls >= 5 else eta")
    item = grade_submission(folder, sandbox="process", limits=FAST).item("Network.training")
    for check in item.checks:
        assert not check.passed
        where = {"classifier": "layer 2 of 5", "binary": "layer 1 of 2"}[check.name]
        assert check.message.startswith(f"epoch 6: the forward output departs first at FullyConnectedLayer ({where})"), check.message
        assert "its weights after the previous epoch's update differ from the truth's" in check.message
        assert check.details["curves"]["yours"][:5] == pytest.approx(check.details["curves"]["truth"][:5], rel=1e-6)


def test_an_update_raising_after_the_read_back_epochs_is_reported_as_its_own_error(tmp_path):
    folder = _reference_with_update(tmp_path, "if calls == 4: raise RuntimeError('fourth step')")
    item = grade_submission(folder, sandbox="process", limits=FAST).item("Network.training")
    for check in item.checks:
        assert not check.passed and check.outcome == "error"
        assert check.message.startswith("the network could not be trained: FullyConnectedLayer.updateWeights(): "), check.message
        assert "RuntimeError" in check.message and "fourth step" in check.message
        assert len(check.details["curves"]["yours"]) == 4  # the losses of the epochs before the one that failed


def test_after_the_read_back_epochs_each_epoch_is_one_round_trip(monkeypatch):
    import grader.checking.training as training
    from grader.sandbox import Sandbox

    counted, training_on = [], []
    request, run = Sandbox.request, training.run_training

    def counting(self, message, timeout=None):
        if training_on:
            counted.append(message["op"])
        return request(self, message, timeout)

    def watched(*args):
        training_on.append(True)
        try:
            return run(*args)
        finally:
            training_on.clear()
    monkeypatch.setattr(Sandbox, "request", counting)
    monkeypatch.setattr(training, "run_training", watched)
    item = grade_submission(reference_dir(), sandbox="process", limits=FAST).item("Network.training")
    assert item.status == "passed"
    # two networks: 22 chained epochs each, beside the read-back epochs asked call by call (before: ~360 requests)
    assert counted.count("chain") == 2 * (training.EPOCHS - training.READ_BACK_EPOCHS)
    assert len(counted) < 100, len(counted)


def test_the_binary_targets_split_at_the_column_medians_as_np_median_does():
    from grader.checking.training import _column_medians

    rng = np.random.default_rng(3)
    for n in (1, 2, 11, 12):
        scores = rng.normal(size=(n, 3))
        np.testing.assert_array_equal(_column_medians(scores), np.median(scores, axis=0))


def test_answers_too_large_for_one_reply_together_are_judged_as_one_by_one(tmp_path):
    # 1000 × 1000 answers (each layer passes one on): together they would pass a reply's bound; each is its own message
    import shutil

    folder = tmp_path / "submission"
    shutil.copytree(reference_dir(), folder, ignore=shutil.ignore_patterns("__pycache__"))
    layers = folder / "layers.py"
    line = "        out = dataIn @ self.weights + self.biases\n"
    assert line in layers.read_text()
    layers.write_text(layers.read_text().replace(line, "        self.__dict__['n'] = self.__dict__.get('n', 0) + 1\n"
                                                       "        if self.n == 3:\n            return np.zeros((1000, 1000))\n" + line))
    result = grade_submission(folder, sandbox="process", limits=FAST)
    item = result.item("Network.training")
    assert [c.name for c in item.checks] == ["classifier", "binary"] and not result.errors  # no fault of the grader's
    for check in item.checks:
        where = {"classifier": "layer 2 of 5", "binary": "layer 1 of 2"}[check.name]
        assert not check.passed and check.outcome != "timeout"
        assert check.message.startswith(f"epoch 3: the forward output departs first at FullyConnectedLayer ({where})"), check.message
        assert "died" not in check.message


def test_a_call_running_out_of_time_in_a_chained_epoch_costs_its_own_limit_and_is_named(tmp_path):
    # each chained call is awaited as long as a call of its own, and the one that hangs is named, as one by one
    folder = tmp_path / "submission"
    import shutil

    shutil.copytree(reference_dir(), folder, ignore=shutil.ignore_patterns("__pycache__"))
    layers = folder / "layers.py"
    line = "    def backward(self, gradIn):\n        return np.asarray(gradIn, dtype=float) @ self.gradient()\n"
    assert line in layers.read_text()
    layers.write_text(layers.read_text().replace(line, "    def backward(self, gradIn):\n"
                                                       "        self.__dict__['n'] = self.__dict__.get('n', 0) + 1\n"
                                                       "        while self.n == 3:\n            pass\n"
                                                       "        return np.asarray(gradIn, dtype=float) @ self.gradient()\n"))
    result = grade_submission(folder, sandbox="process", limits=FAST)
    classifier, binary = result.item("Network.training").checks
    assert classifier.outcome == "timeout" and binary.outcome == "timeout"
    assert classifier.message.startswith("the network could not be trained: FullyConnectedLayer.backward(): "), classifier.message
