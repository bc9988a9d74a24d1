"""Outputs: a graded result written for people and machines.

Owns the result JSON and Gradescope's results.json (`writers.py`), the HTML reports and their
templates (`html_report.py`, `templates/`), the terminal table and plain-text feedback
(`text_report.py`, `terminal.py`).

May import: the top-level tools, `grader.assignment` and `grader.checking.results` (the records).
"""
