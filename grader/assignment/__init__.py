"""The assignment: what is graded, read from a TOML spec before anything else runs.

Owns the spec (`spec.py`: validated into dataclasses), its formulas (`formulas.py`: parsed
without `eval`), the table of named, weighted checks (`check_table.py`), the late policy of its
`[late]` table (`late.py`) and the built-in specs (`specs/`).

May import: the top-level tools (`grader.exceptions`, `grader.paths`, `grader.cache`) and
`grader.sandbox.environment` (to check that the packages a spec allows are installed). Nothing
here imports numpy at module level: the spec is read before the worker is launched.
"""
