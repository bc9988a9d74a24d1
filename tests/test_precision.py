"""Judging at the student's precision: which dtype is which, and the tolerances each gets."""
import numpy as np

from grader.checking.precision import FLOAT64, PRECISIONS, lowest, precision_of
from grader.assignment.spec import Tolerance


def test_dtypes_map_to_their_precision_and_exact_types_to_float64():
    assert precision_of("float32") is PRECISIONS["float32"] and precision_of("float16") is PRECISIONS["float16"]
    for exact in ("float64", "int64", "bool", "int8", "", None, "not a dtype"):
        assert precision_of(exact) is FLOAT64
    assert lowest([FLOAT64, PRECISIONS["float32"], FLOAT64]).name == "float32"
    assert lowest([]) is FLOAT64


def test_float64_keeps_the_specs_tolerances_and_lower_precisions_loosen_them():
    tol = Tolerance()
    assert FLOAT64.values(tol) == (tol.rtol, tol.atol)
    assert FLOAT64.finite_differences(tol) == (tol.fd_step, tol.fd_rtol, tol.fd_atol)
    f32 = PRECISIONS["float32"]
    assert f32.values(tol)[0] > tol.rtol and f32.finite_differences(tol) == (1e-3, 2e-3, 2e-3)  # jax's check_grads figure
    assert f32.reduced and not FLOAT64.reduced
    # a spec stricter than the floor never makes float32 stricter than the floor, a looser one wins
    assert f32.values(Tolerance(rtol=0.5, atol=0.5)) == (0.5, 0.5)


def test_rounding_scales_with_magnitude_and_epsilon():
    f32 = PRECISIONS["float32"]
    assert f32.rounding(1000.0) == 8 * np.finfo(np.float32).eps * 1000.0
    assert FLOAT64.rounding(1.0) < 1e-14
