"""The grader's own errors. The CLI alone turns them into exit statuses (2 for a user's mistake)."""


class GraderError(Exception):
    """Base class of every error the grader raises on purpose."""

    exit_code = 1


class UsageError(GraderError):
    """Raised when the command line names something that cannot be used (a missing path, say)."""

    exit_code = 2


class ClusterError(UsageError):
    """Raised before grading when the dask cluster named by --dask cannot run the grader (exit 1)."""

    exit_code = 1


class GradingStopped(GraderError):
    """Raised when the first submissions of a batch all failed in the grader the same way: a fault
    of the grader or its environment, which would otherwise give every student a 0."""


class SpecError(UsageError):
    """Raised when an assignment spec cannot be read or says something invalid.

    The message names the file, and where it applies the item and the key.
    """

    def __init__(self, source: str, problem: str, item: str | None = None, key: str | None = None):
        self.source, self.problem, self.item, self.key = source, problem, item, key
        where = [source]
        if item:
            where.append(f"[classes.{item}]" + (f" key '{key}'" if key else ""))
        elif key:
            where.append(f"key '{key}'")
        super().__init__(": ".join([" ".join(where[:1]), *where[1:], problem]))


class FormulaError(ValueError):
    """Raised when a formula string of a spec is not a valid expression of its allowed symbols."""


class SubmissionError(UsageError):
    """Raised when a submission path cannot be read at all (missing, unreadable, a corrupt zip)."""
