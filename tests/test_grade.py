"""Each fixture submission has one realistic mistake: the exact items it costs, their status and diagnosis.

Every item not named for a fixture must keep full marks; that is what "no double penalty" means
in practice (a wrong forward does not sink its gradient, a wrong gradient does not sink backward).
"""
import shutil
import zipfile
from pathlib import Path

import pytest

from grader.grade import grade_submission
from grader.paths import reference_dir, template_dir
from grader.sandbox import Limits, bwrap_available

FIXTURES = Path(__file__).resolve().parent / "fixtures"

SUBMISSIONS = FIXTURES / "submissions"
FAST = Limits(call_timeout=1.0, total_timeout=120.0)

UPDATE = "FullyConnectedLayer.updateWeights"
# fixture -> {item: (status, score, diagnosis that must be named, or None)}; other items: full marks.
EXPECTED = {
    "se_gradient_missing_2": {"SquaredError.gradient": ("failed", 0.0, "a factor of 2 missing")},
    "se_gradient_divided_by_n": {"SquaredError.gradient": ("partial", 1.0, "divided by N (= 7)")},
    "se_eval_not_reduced": {"SquaredError.eval": ("failed", 0.0, "not reduced")},
    "logloss_no_epsilon": {"LogLoss.eval": ("partial", 2.4, "missing ε"), "LogLoss.gradient": ("partial", 3.6, "missing ε")},
    "logloss_gradient_shortcut": {"LogLoss.gradient": ("failed", 0.0, "the Ŷ − Y shortcut")},
    "ce_eval_mean_all_entries": {"CrossEntropy.eval": ("failed", 0.0, "J reduced as the mean over all N·K entries instead of the mean over the N observations")},
    "ce_gradient_sign_flipped": {"CrossEntropy.gradient": ("failed", 0.0, "sign flipped")},
    "ce_eval_binary_logloss": {"CrossEntropy.eval": ("failed", 0.0, "binary log loss where cross entropy was asked")},
    "ce_gradient_shortcut": {"CrossEntropy.gradient": ("failed", 0.0, "the Ŷ − Y shortcut")},
    "input_ddof0": {"InputLayer.forward": ("failed", 0.0, "z-scored with ddof=0 instead of ddof=1")},
    "input_whole_matrix": {"InputLayer.forward": ("failed", 0.0, "z-scored over the whole matrix")},
    "input_zero_std": {"InputLayer.forward": ("partial", 3.2, "a zero standard deviation not replaced by 1")},
    # dataIn is z-scored in place after setPrevIn(dataIn): the stored input is the mutated one too,
    # as in relu_forward_mutates (a layer like the others: both auxiliary checks, 4 × 0.8)
    "input_mutates": {"InputLayer.forward": ("partial", 3.2, "input mutated")},
    "input_no_store": {"InputLayer.forward": ("partial", 3.6, None)},
    "fc_gradient_w": {"FullyConnectedLayer.gradient": ("failed", 0.0, "W instead of Wᵀ")},
    "fc_bias_ignored": {"FullyConnectedLayer.forward": ("failed", 0.0, "bias ignored")},
    "relu_gradient_output": {"ReLuLayer.gradient": ("failed", 0.0, "returned the output g(z) instead of the derivative")},
    "relu_forward_mutates": {"ReLuLayer.forward": ("partial", 3.2, "input mutated"),
                             # forward() clamps X in place and gradient() reads the clamped X: after forward(),
                             # backward() gives what this student's network would compute, and that is wrong
                             "ReLuLayer.backward": ("partial", 3.4, None)},
    "sigmoid_gradient_g": {"LogisticSigmoidLayer.gradient": ("failed", 0.0, "g instead of g(1 − g)")},
    "sigmoid_applied_twice": {"LogisticSigmoidLayer.forward": ("failed", 0.0, "activation applied twice")},
    "sigmoid_raises": {"LogisticSigmoidLayer.gradient": ("error", 0.0, None), "LogisticSigmoidLayer.backward": ("error", 0.0, None)},
    "tanh_one_minus_g": {"TanhLayer.gradient": ("failed", 0.0, "1 − g instead of 1 − g²")},
    "tanh_naive_overflow": {"TanhLayer.forward": ("partial", 3.2, "the formula evaluated as written overflows")},
    # gradient() returns the N×K diagonal; backward() (the base class's gradIn * sg) chains it correctly
    "softmax_diagonal_only": {"SoftmaxLayer.gradient": ("failed", 0.0, "only the diagonal of the softmax Jacobian")},
    "softmax_backward_diagonal_only": {"SoftmaxLayer.backward": ("failed", 0.0, "only the diagonal of the softmax Jacobian used")},
    "softmax_outer_without_diagonal": {"SoftmaxLayer.gradient": ("failed", 0.0, "softmax Jacobian from −g·gᵀ without the diagonal term")},
    "softmax_offdiagonal_sign": {"SoftmaxLayer.gradient": ("failed", 0.0, "off-diagonal signs flipped")},
    "softmax_no_max_shift": {"SoftmaxLayer.forward": ("partial", 4.0, "softmax without the max shift")},
    "softmax_global_max": {"SoftmaxLayer.forward": ("partial", 4.0, "one global max")},
    "softmax_batch_normalised": {"SoftmaxLayer.forward": ("partial", 1.75, "normalised over the whole batch")},
    "softmax_backward_elementwise": {"SoftmaxLayer.backward": ("failed", 0.0, "element-wise backward through a full Jacobian")},
    "softmax_gradient_loops_forever": {"SoftmaxLayer.gradient": ("timeout", 0.0, None), "SoftmaxLayer.backward": ("timeout", 0.0, None)},
    "softmax_no_backward": {"SoftmaxLayer.backward": ("missing", 0.0, None)},
    "fc_backward_untransposed": {"FullyConnectedLayer.backward": ("error", 0.0, None)},
    "linear_forward_no_return": {"LinearLayer.forward": ("failed", 0.0, None)},
    "linear_gradient_identity": {"LinearLayer.gradient": ("partial", 0.15, "one K×K matrix for the whole batch"),
                                 "LinearLayer.backward": ("failed", 0.0, None)},
    "relu_backward_ignores_gradin": {"ReLuLayer.backward": ("failed", 0.0, "gradIn ignored")},
    "tanh_backward_output": {"TanhLayer.backward": ("failed", 0.0, "δ multiplied by the output g(z)")},
    "tanh_missing": {f"TanhLayer.{m}": ("missing", 0.0, None) for m in ("forward", "gradient", "backward")},
    "broken_syntax_error": {f"SoftmaxLayer.{m}": ("error", 0.0, None) for m in ("forward", "gradient", "backward")},
    "float32_se_gradient_missing_2": {"SquaredError.gradient": ("failed", 0.0, "a factor of 2 missing")},
    # ε = 5e-4 and 1e-4 (500 and 100 × the largest accepted) in the sigmoid and tanh gradients: cast to
    # float16 or float32 or not, every check of both items fails; backward chains them and keeps its marks
    **{f"{dtype}_sigmoid_tanh_eps_{eps}": {f"{cls}.gradient": ("failed", 0.0, None) for cls in ("LogisticSigmoidLayer", "TanhLayer")}
       for dtype in ("float16", "float32", "float64") for eps in ("5e-4", "1e-4")},
    # no ε at all: right everywhere except at ŷ = 0 and 1, where only the edge checks look
    "no_epsilon": {"LogLoss.eval": ("partial", 2.4, "missing ε"), "LogLoss.gradient": ("partial", 3.6, "missing ε"),
                   "CrossEntropy.eval": ("partial", 2.4, "missing ε"), "CrossEntropy.gradient": ("partial", 3.6, "missing ε")},
    # correct variants: every accepted ε, the slides' own notation, float32
    "eps_variants_correct": {},
    "eps_1e6_written_10e7": {},
    "eps_1e8": {},
    "eps_clip_1e15": {},
    "slides_notation_correct": {},
    "numeric_complex_step": {},  # gradients computed numerically: right numbers, full marks (and a note)
    "numeric_finite_differences": {},
    "float32_correct": {},
    "float32_softmax_logsumexp": {},
    "float32_formula_variants": {},
    "float32_weights_only": {},
    "float64_formula_variants": {},
    "jacobian_forms_correct": {},
    "aliases_correct": {},
    "fc_getters_only": {},
    # the update step: each mistake costs FullyConnectedLayer.updateWeights alone (one observation
    # cannot tell a sum from a mean: those keep single_observation and, with it, next_forward)
    "fc_update_summed": {UPDATE: ("partial", 1.25, "summed instead of averaged: Xᵀδ, N (= 7) times too large")},
    "fc_update_ascent": {UPDATE: ("failed", 0.0, "gradient ascent")},
    "fc_update_bias_not_updated": {UPDATE: ("failed", 0.0, "bias not updated")},
    "fc_update_bias_summed": {UPDATE: ("partial", 1.25, "bias summed over the observations instead of averaged")},
    "fc_update_eta_ignored": {UPDATE: ("failed", 0.0, "η ignored")},
    "fc_update_output_for_input": {UPDATE: ("failed", 0.0, "the layer's output used instead of its input")},
    "fc_update_first_observation": {UPDATE: ("partial", 1.25, "only the first observation used")},
    "fc_backward_updates_first": {"FullyConnectedLayer.backward": ("failed", 0.0, "W updated inside backward() before its result was computed")},
    "fc_setbiases_other_attribute": {"FullyConnectedLayer.forward": ("failed", 0.0, "setBiases() did not change what forward() uses")},
    # the shapes students write it in: all right
    "fc_update_shapes_learning_rate": {},
    "fc_update_shapes_own_rate": {},
    "fc_update_shapes_after_backward": {},
    "fc_update_shapes_adam_default": {UPDATE: ("failed", 0.0, None)},
    "fc_update_after_backward_bias_not_updated": {UPDATE: ("failed", 0.0, "bias not updated")},
    "layout_one_class_per_file": {},
    "layout_relative_package": {},
    "layout_absolute_import": {},
    "layout_self_package/framework": {},
    "duplicate_class": {},
}
EXPECTED["imports_unused_matplotlib"] = {}


@pytest.fixture(scope="module")
def graded():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = grade_submission(SUBMISSIONS / name, sandbox="process", limits=FAST)
        return cache[name]
    return get


@pytest.mark.parametrize("fixture", sorted(EXPECTED))
def test_fixture_costs_exactly_its_mistake(fixture, graded):
    result = graded(fixture)
    expected = EXPECTED[fixture]
    for item in result.items:
        if item.name.startswith("Network."):
            continue
        if item.name in expected:
            status, score, diagnosis = expected[item.name]
            assert item.status == status, f"{item.name}: {item.feedback}"
            assert item.score == pytest.approx(score), f"{item.name}: {item.feedback}"
            if diagnosis:
                assert any(diagnosis in d for d in item.diagnoses), f"{item.name}: {item.diagnoses}"
                assert diagnosis in item.feedback
        else:
            assert item.status == "passed" and item.score == item.max_score, f"{item.name} lost points: {item.feedback}"
    assert not [e for e in result.errors if "internal error" in e or "ground truths disagree" in e]


def test_every_item_is_broken_by_some_fixture(spec):
    broken = {item for exp in EXPECTED.values() for item, (status, _, _) in exp.items() if status != "passed"}
    assert {item.name for item in spec.items} <= broken


def test_missing_return_says_so(graded):
    item = graded("linear_forward_no_return").item("LinearLayer.forward")
    assert "LinearLayer.forward() gave None (is a `return` missing?)" in item.feedback


def test_student_exception_shows_their_traceback(graded):
    item = graded("fc_backward_untransposed").item("FullyConnectedLayer.backward")
    assert "ValueError: matmul" in item.feedback and "submission.py" in item.feedback


def test_every_catalogued_diagnosis_is_exercised():
    named = {d for exp in EXPECTED.values() for (_, _, d) in exp.values() if d}
    for required in ("sign flipped", "a factor of 2 missing", "divided by N", "the Ŷ − Y shortcut", "missing ε",
                     "binary log loss where cross entropy was asked", "ddof=0", "whole matrix", "W instead of Wᵀ",
                     "bias ignored", "returned the output g(z)", "activation applied twice", "g instead of g(1 − g)",
                     "1 − g instead of 1 − g²", "only the diagonal of the softmax Jacobian", "without the diagonal term",
                     "normalised over the whole batch", "softmax without the max shift", "one global max",
                     "element-wise backward through a full Jacobian", "input mutated", "N·K entries"):
        assert any(required in d for d in named), required


def test_softmax_backward_chaining_its_own_diagonal_gradient_keeps_its_marks(graded):
    # one mistake, one item: gradient() returns only g(1 − g) (N×K), backward() is gradIn * gradient()
    result = graded("softmax_diagonal_only")
    assert result.item("SoftmaxLayer.gradient").score == 0.0
    backward = result.item("SoftmaxLayer.backward")
    assert backward.status == "passed" and backward.score == backward.max_score == 5.0
    assert "applies the chain rule correctly to your gradient(), which is not right: see SoftmaxLayer.gradient" in backward.feedback
    assert result.score == 94.0


def test_input_layer_that_does_not_store_loses_exactly_the_storage_check(graded):
    item = graded("input_no_store").item("InputLayer.forward")
    assert [c.name for c in item.checks if not c.passed] == ["stores_input_output"]
    assert "forward(X) must store X with setPrevIn(X)." in item.feedback


def test_a_cast_to_lower_precision_buys_no_tolerance(graded):
    for dtype in ("float16", "float32", "float64"):
        result = graded(f"{dtype}_sigmoid_tanh_eps_5e-4")
        for cls in ("LogisticSigmoidLayer", "TanhLayer"):
            item = result.item(f"{cls}.gradient")
            assert [c.passed for c in item.checks] == [False] * 4, (dtype, item.feedback)
            if dtype != "float64":
                assert f"your gradient() computes in {dtype}" in item.feedback
        assert result.score == 92.0
    note = graded("float16_sigmoid_tanh_eps_5e-4").item("TanhLayer.gradient").feedback
    assert "judged at float32's precision, the coarsest the grader allows" in note


HONEST_PRECISION = ("float32_correct", "float32_softmax_logsumexp", "float32_formula_variants", "float32_weights_only",
                    "float64_formula_variants")


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_honest_float32_and_unusual_float64_keep_full_marks_on_every_seed(seed):
    # the test points change with the seed: a band that holds on seed 0 only is a false verdict elsewhere
    for name in HONEST_PRECISION:
        result = grade_submission(SUBMISSIONS / name, seed=seed, sandbox="process", limits=FAST)
        lost = [(i.name, i.feedback) for i in result.items if i.score != i.max_score]
        assert result.score == 100.0 and not lost, (name, seed, lost)


def test_a_float32_softmax_through_logsumexp_is_right_at_rows_near_1000(graded):
    # log-sum-exp 1000.41 in float32 steps of 6e-5: 1.3e-5 relative off, float32's own rounding of the rule
    item = graded("float32_softmax_logsumexp").item("SoftmaxLayer.forward")
    assert item.status == "passed" and [c.name for c in item.checks if c.name == "edges" and c.passed] == ["edges"], item.feedback
    assert "your forward() computes in float32" in item.feedback


def test_float16_is_judged_at_float32s_precision(graded):
    # float16's own rounding (~5e-4 relative) is a difference at float32's tolerances; exact answers still pass
    result = graded("float16_correct")
    assert result.score == 48.7  # its updateWeights is right: the step is computed from what it stores
    assert result.item("ReLuLayer.gradient").status == "passed" and result.item("SoftmaxLayer.backward").status == "passed"
    assert result.item("TanhLayer.forward").score == 0.0


def test_backward_passes_on_its_own_wrong_gradient_and_says_so(graded):
    item = graded("sigmoid_gradient_g").item("LogisticSigmoidLayer.backward")
    assert item.status == "passed"
    assert "applies the chain rule correctly to your gradient(), which is not right" in item.feedback


def test_gradient_judged_on_true_state_when_forward_is_wrong(graded):
    result = graded("sigmoid_applied_twice")
    gradient = result.item("LogisticSigmoidLayer.gradient")
    assert gradient.status == "passed"
    fd = next(c for c in gradient.checks if c.name == "finite_differences")
    assert "central differences of the true forward" in fd.note


def test_failed_check_message_follows_numpy_order_then_rule(graded):
    item = graded("se_gradient_missing_2").item("SquaredError.gradient")
    text = item.feedback
    assert text.index("Mismatched elements: 21 / 21 (100%)") < text.index("at (0, 0): got") < text.index("Max absolute difference")
    assert text.index("Max relative difference: 0.5") < text.index("Likely mistake: a factor of 2 missing") < text.index("Expected rule: ∂J/∂ŷ = −2(y − ŷ)")


def test_shape_mismatch_is_reported_first(graded):
    item = graded("se_eval_not_reduced").item("SquaredError.eval")
    assert item.checks[0].message.startswith("Shape mismatch: your result has shape (7, 3), expected ().")


def test_syntax_error_names_file_and_line(graded):
    result = graded("broken_syntax_error")
    assert result.item("SoftmaxLayer.forward").reason == "syntax error in SoftmaxLayer.py, line 16: expected ':'"
    assert result.errors == ["syntax error: SoftmaxLayer.py, line 16: expected ':'"]


def test_an_unused_import_costs_nothing_and_is_listed(graded):
    result = graded("imports_unused_matplotlib")
    assert result.score == 100
    assert result.placeholders == [{"package": "matplotlib", "module": "matplotlib", "file": "layers.py", "line": "1"}]


def test_duplicate_class_is_warned_about(graded):
    result = graded("duplicate_class")
    # its other copy lies in old/, a folder set aside: graded only if nothing else had the class
    assert result.warnings == ["copies in folders set aside were not graded: old/softmax_attempt.py (the classes in the other files were)"]
    assert result.item("SoftmaxLayer.forward").graded_as["file"] == "submission.py"


def test_timeout_restarts_the_worker_and_grading_goes_on(graded):
    result = graded("softmax_gradient_loops_forever")
    assert result.score == 89.0
    checks = result.item("SoftmaxLayer.gradient").checks
    assert checks[0].outcome == "timeout" and "skipped: an earlier check of this item timed out" in checks[1].message


def test_training_script_is_never_run(graded):
    # layout_one_class_per_file has train.py, which loops forever and imports matplotlib at module level.
    result = graded("layout_one_class_per_file")
    assert result.score == 100 and result.elapsed_s < 20


def test_end_to_end_diagnostic_names_the_first_faulty_layer(graded):
    net = graded("softmax_diagonal_only").item("Network.classifier")
    assert net.max_score == 0 and net.status == "failed"
    assert "δ departs first at SoftmaxLayer.backward (layer 5 of 5, going backward)" in net.feedback
    net = graded("fc_bias_ignored").item("Network.binary")
    assert "the forward output departs first at FullyConnectedLayer (layer 1 of 2)" in net.feedback
    net = graded("ce_gradient_sign_flipped").item("Network.classifier")
    assert "δ departs first at CrossEntropy.gradient" in net.feedback
    assert graded("aliases_correct").item("Network.classifier").status == "passed"


def test_reference_scores_full_marks_and_template_nothing():
    ref = grade_submission(reference_dir(), sandbox="process")
    assert ref.score == 100 and ref.max_score == 100 and not ref.errors
    assert all(i.status == "passed" for i in ref.items)
    tpl = grade_submission(template_dir(), sandbox="process")
    assert tpl.score == 0
    assert {i.status for i in tpl.items} == {"not_implemented"}


@pytest.mark.skipif(not bwrap_available(), reason="bubblewrap is not installed")
def test_bubblewrap_sandbox_grades_the_same():
    ref = grade_submission(reference_dir(), sandbox="bwrap")
    assert ref.sandbox == "bwrap" and ref.score == 100
    broken = grade_submission(SUBMISSIONS / "softmax_diagonal_only", sandbox="bwrap")
    assert broken.score == pytest.approx(94.0)


def test_single_file_and_zip_submissions(tmp_path):
    single = tmp_path / "alice.py"
    shutil.copy(FIXTURES / "base_submission.py", single)
    result = grade_submission(single, sandbox="process")
    assert result.submission == "alice" and result.score == 100
    archive = tmp_path / "bob.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in (SUBMISSIONS / "layout_relative_package").rglob("*.py"):
            z.write(path, "bob_hw2/" + path.relative_to(SUBMISSIONS / "layout_relative_package").as_posix())
    result = grade_submission(archive, sandbox="process")
    assert result.submission == "bob" and result.score == 100


def test_the_original_submission_is_never_changed(tmp_path):
    src = tmp_path / "carol"
    shutil.copytree(SUBMISSIONS / "input_mutates", src)
    (src / "writer.py").write_text("")
    before = {p: p.read_bytes() for p in src.rglob("*")if p.is_file()}
    grade_submission(src, sandbox="process")
    after = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}
    assert before == after


def test_a_spec_that_contradicts_the_reference_is_reported_as_a_grader_fault(tmp_path):
    from grader.assignment.spec import load_spec

    text = (Path(__file__).resolve().parent.parent / "grader" / "assignment" / "specs" / "default.toml").read_text()
    spec_file = tmp_path / "wrong.toml"
    text = text.replace('forward = "(exp(z) - exp(-z))/(exp(z) + exp(-z))"', 'forward = "z"')
    spec_file.write_text(text.replace('rule_formulas = { gradient = "1 - g**2 + eps" }', ""))  # no longer its rule
    result = grade_submission(reference_dir(), spec=load_spec(spec_file), sandbox="process")
    assert any(e.startswith("ground truths disagree for TanhLayer.forward") for e in result.errors)


@pytest.mark.parametrize("outcomes, status", [
    (["error", "timeout", "timeout"], "error"),      # MemoryError, then a hang: the code never answered
    (["timeout", "error"], "timeout"),
    (["timeout", "timeout"], "timeout"),
    (["ok", "timeout"], "failed"),                   # wrong numbers once: that is a failure
])
def test_item_status_says_what_happened_when_no_answer_came(outcomes, status):
    from grader.checking.results import CheckResult, ItemResult

    item = ItemResult("TanhLayer.forward", 4.0,
                      checks=[CheckResult(f"c{i}", False, 1.0, outcome=o) for i, o in enumerate(outcomes)])
    assert item.status == status and item.score == 0.0


def test_feedback_names_a_mistake_once(graded):
    feedback = graded("softmax_diagonal_only").item("SoftmaxLayer.gradient").feedback
    assert feedback.count("Likely mistake: only the diagonal of the softmax Jacobian") == 1
    assert feedback.count("Shape mismatch") == 4  # every failed check still says what it found


def test_a_wrong_diagonal_is_reported_at_the_students_own_indices(graded):
    # sigmoid_gradient_g returns the N×K diagonal: mismatches are its 21 entries, not 21 of a 7×3×3 Jacobian
    message = graded("sigmoid_gradient_g").item("LogisticSigmoidLayer.gradient").checks[0].message
    assert message.startswith("Mismatched elements: 21 / 21 (100%)") and "  at (0, 0): got" in message
    assert "/ 63" not in message and "(0, 0, 0)" not in message
