"""nn-grader: grades numpy neural-network layers and objectives against SymPy-derived ground truth.

The package follows its data flow, one folder per stage (each `__init__.py` says what it owns and
what it may import): `assignment/` (the spec) → `truth/` (what the answers should be) →
`intake/` (the submission, read) → `sandbox/` (student code, run apart) → `checking/` (answers
judged; the result records) → `outputs/` (JSON, HTML, terminal) → `course/` (a class's batch and
the instructor's tools). `kinds/` registers each kind of item (objective, elementwise, softmax,
fully_connected, input): declared for the spec, implemented in a module of its own for the checks. At the top: `grade.py` (one submission through the stages), `api.py`,
`cli.py`, `admin_cli.py`, and the tools every stage may use (`exceptions.py`, `paths.py`, `cache.py`).

`grader.grade_submission` and `grader.load_spec` are the library's entry points (imported on
first use, so that `import grader` loads nothing else).
"""

__version__ = "0.1.0"


def __getattr__(name):
    if name == "grade_submission":
        from grader.grade import grade_submission
        return grade_submission
    if name == "load_spec":
        from grader.assignment.spec import load_spec
        return load_spec
    raise AttributeError(f"module 'grader' has no attribute {name!r}")
