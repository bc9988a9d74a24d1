"""The comparison engine: verdicts and messages in numpy's order."""
import numpy as np
import pytest

from grader.checking.compare import compare


def test_equal_within_tolerance_passes():
    assert compare([1.0, 2.0], [1.0, 2.0 + 1e-9], rtol=1e-6, atol=0).passed


def test_shape_comes_first_and_alone():
    result = compare(np.zeros((3, 2)), np.zeros((2, 3)), rtol=1e-6, atol=1e-8)
    assert not result.passed
    assert result.message == "Shape mismatch: your result has shape (3, 2), expected (2, 3)."


def test_message_order_nan_then_count_then_indices_then_max_differences():
    got = np.array([[1.0, np.nan, 3.0], [4.0, 5.5, 6.0]])
    expected = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    result = compare(got, expected, rtol=1e-6, atol=1e-8)
    lines = result.message.splitlines()
    assert lines[0] == "NaN where a finite value was expected, at (0, 1)."
    assert lines[1] == "Mismatched elements: 2 / 6 (33.3%)"
    assert lines[2] == "  at (0, 1): got nan, expected 2"
    assert lines[3] == "  at (1, 1): got 5.5, expected 5"
    assert lines[4] == "1 of 6 entries of your result are not finite (NaN or ±inf) where a finite value was expected."
    assert lines[5] == "Max absolute difference: 0.5  (tolerance atol=1e-08)"  # of the finite entries
    assert lines[6] == "Max relative difference: 0.1  (tolerance rtol=1e-06)"
    assert result.mismatched == 2 and result.total == 6


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_an_answer_wrong_only_by_nan_or_inf_says_how_many_entries_are_not_finite(bad):
    got = np.array([[1.0, bad, 3.0], [bad, 5.0, 6.0]])
    result = compare(got, np.arange(1.0, 7.0).reshape(2, 3), rtol=1e-6, atol=1e-8)
    assert not result.passed and result.mismatched == 2
    assert "2 of 6 entries of your result are not finite (NaN or ±inf) where a finite value was expected." in result.message
    assert "Max absolute difference" not in result.message  # it was "Max absolute difference: 0"


def test_matching_infinities_are_equal_and_mismatched_ones_are_named():
    assert compare([np.inf, -np.inf, 1.0], [np.inf, -np.inf, 1.0], rtol=1e-6, atol=0).passed
    result = compare([np.inf, 1.0], [5.0, 1.0], rtol=1e-6, atol=0)
    assert result.message.startswith("+inf where a finite value was expected, at (0,).")


def test_only_the_first_five_indices_are_listed():
    result = compare(np.ones(12), np.zeros(12), rtol=0, atol=0.5)
    assert "  … and 7 more" in result.message
    assert result.message.count("  at (") == 5


def test_scalars_compare_with_empty_index():
    result = compare(np.float64(2.0), np.float64(1.0), rtol=1e-6, atol=0)
    assert "  at (): got 2, expected 1" in result.message


def test_a_band_accepts_every_value_between_its_ends_and_says_so():
    expected, lower, upper = np.array([1.0, 2.0]), np.array([0.9, 2.0]), np.array([1.2, 2.5])
    assert compare([0.95, 2.4], expected, rtol=1e-6, atol=0, lower=lower, upper=upper).passed
    result = compare([1.3, 2.4], expected, rtol=1e-6, atol=0, lower=lower, upper=upper)
    assert not result.passed and result.mismatched == 1
    assert "  at (0,): got 1.3, expected 1 (any value from 0.9 to 1.2 is right)" in result.message
    assert "Max absolute difference: 0.1" in result.message  # measured from the band, not from 1


def test_an_infinite_band_accepts_any_finite_value_but_not_inf_or_nan():
    expected, lower, upper = np.array([-1e7]), np.array([-np.inf]), np.array([np.inf])
    assert compare([-3.0], expected, rtol=1e-6, atol=0, lower=lower, upper=upper).passed
    for bad in (np.inf, -np.inf, np.nan):
        result = compare([bad], expected, rtol=1e-6, atol=0, lower=lower, upper=upper)
        assert not result.passed and "where a finite value was expected" in result.message


def test_the_quick_path_for_close_finite_answers_agrees_with_the_general_one():
    # compare() without bounds returns early when every entry is finite and close; lower=expected takes the general path
    rng = np.random.default_rng(1)
    for _ in range(300):
        expected = rng.normal(size=5) * 10.0 ** rng.integers(-8, 4)
        got = expected * (1 + rng.normal(scale=1e-5, size=5)) + rng.normal(scale=1e-6, size=5)
        got[rng.random(5) < 0.05] = rng.choice([np.nan, np.inf, -np.inf])
        expected[rng.random(5) < 0.03] = rng.choice([np.nan, np.inf])
        with np.errstate(invalid="ignore"):  # the general path's message subtracts ∞ − ∞ for an infinite expected value
            quick = compare(got, expected, rtol=1e-5, atol=1e-6)
            general = compare(got, expected, rtol=1e-5, atol=1e-6, lower=expected)
        assert (quick.passed, quick.mismatched) == (general.passed, general.mismatched)
