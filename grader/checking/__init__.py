"""Checking: the student's answers asked for and judged against the truth, item by item.

Owns the student's objects as the checks see them (`student.py`, over `grader.sandbox`), the test
points and their seed (`points.py`, `seeding.py`), the checks that run (`checks.py`), the one
comparison engine and its tolerances (`compare.py`, `precision.py`), the named mistakes
(`diagnose.py`), the end-to-end network diagnostic (`network.py`) and the records they fill
(`results.py`), which every later stage reads.

May import: the top-level tools, `grader.assignment`, `grader.truth`, `grader.intake`,
`grader.sandbox`.
"""
