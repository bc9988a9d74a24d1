"""Judging at the student's precision: which dtype is which, and the tolerances each gets."""
import numpy as np

from grader.precision import FLOAT64, PRECISIONS, lowest, precision_of
from grader.spec import Tolerance


def test_dtypes_map_to_their_precision_and_exact_types_to_float64():
    assert precision_of("float32") is PRECISIONS["float32"] and precision_of("float16") is PRECISIONS["float16"]
    for exact in ("float64", "int64", "bool", "int8", "", None, "not a dtype"):
        assert precision_of(exact) is FLOAT64
    assert lowest([FLOAT64, PRECISIONS["float32"], FLOAT64]).name == "float32"
    assert lowest([PRECISIONS["float32"], PRECISIONS["float16"]]).name == "float16"
    assert lowest([]) is FLOAT64


def test_float32_buys_only_its_rounding_error_never_a_wider_band():
    tol = Tolerance()
    f32 = PRECISIONS["float32"]
    # the spec's tolerances already hold float32's rounding (measured on the float32 fixture): nothing looser
    assert f32.values(tol) == FLOAT64.values(tol) == (tol.rtol, tol.atol)
    assert f32.finite_differences(tol) == (1e-3, tol.fd_rtol, tol.fd_atol)  # a step float32 resolves, the spec's tolerances
    assert FLOAT64.finite_differences(tol) == (tol.fd_step, tol.fd_rtol, tol.fd_atol)
    # a spec finer than float32's rounding gets a few rounding errors as a floor, no more
    eps32 = float(np.finfo(np.float32).eps)
    assert f32.values(Tolerance(rtol=1e-9, atol=1e-9)) == (8 * eps32, 8 * eps32)
    assert f32.values(Tolerance(rtol=0.5, atol=0.5)) == (0.5, 0.5)
    assert f32.reduced and not FLOAT64.reduced


def test_float16_gets_nothing_coarser_than_float32():
    tol = Tolerance()
    f16, f32 = PRECISIONS["float16"], PRECISIONS["float32"]
    assert f16.values(tol) == f32.values(tol) and f16.finite_differences(tol) == f32.finite_differences(tol)
    assert f16.rounding(1.0) == f32.rounding(1.0)
    assert f16.reduced and f16.judged_as == "float32" and f32.judged_as == "float32"


def test_rounding_scales_with_magnitude_and_epsilon():
    f32 = PRECISIONS["float32"]
    assert f32.rounding(1000.0) == 8 * np.finfo(np.float32).eps * 1000.0
    assert FLOAT64.rounding(1.0) < 1e-14
