"""Ground truth: what each item of the assignment should answer, derived before any student code runs.

Owns the SymPy derivation and its numpy functions (`symbolic.py`), the rules the reports print
(`rules.py`) and the instructor's reference implementation as a second truth
(`reference_truth.py`). What it derives is cached on disk by `grader.cache`.

May import: the top-level tools and `grader.assignment`.
"""
