"""Shared fixtures: the default spec, the truths, and the fixture folders; and the suite's one rule
about warnings: no process of the grader forks while another thread runs (see below)."""
import os
from pathlib import Path

import pytest

from grader.sandbox.process import ONE_BLAS_THREAD

# The suite runs the grader as the `grade` command does (cli.ask_one_blas_thread): one BLAS thread,
# set before anything imports numpy. A batch in a process with threads of its own is tested apart.
for _name, _value in ONE_BLAS_THREAD.items():
    os.environ.setdefault(_name, _value)

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


# Python 3.12+ warns when a multi-threaded process forks ("This process (pid=…) is multi-threaded,
# use of fork() may lead to deadlocks in the child"), but drops the warning when a filter makes it
# an error (os.fork clears it): `filterwarnings = error` cannot catch it. Every recorded one is
# counted here instead, and fails the run.
FORK_WARNING = "is multi-threaded, use of fork()"
_forked_while_threaded: list[str] = []


def pytest_warning_recorded(warning_message, when, nodeid, location):
    if FORK_WARNING in str(warning_message.message):
        _forked_while_threaded.append(nodeid or when)


def pytest_sessionfinish(session, exitstatus):
    if _forked_while_threaded and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    if _forked_while_threaded:
        names = ", ".join(sorted(set(_forked_while_threaded)))
        terminalreporter.write_line(f"FAILED: {len(_forked_while_threaded)} fork() of a multi-threaded process, in: {names}", red=True)
