"""Shared fixtures: the default spec, the truths, and the fixture folders."""
from pathlib import Path

import pytest

from grader.assignment.spec import load_spec
from grader.truth.symbolic import SymbolicTruth

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def spec():
    return load_spec()


@pytest.fixture(scope="session")
def truth(spec):
    return SymbolicTruth(spec.epsilon)
