"""The course: a class's worth of submissions, and what an instructor does around grading.

Owns batch grading (`batch.py`), late work applied per student and overrides (`overrides.py`;
the late policy itself is read with the spec, in `grader.assignment.late`), copying found by
shared wrong answers and by code (`shared_answers.py`, `similarity.py`) and the student kit
and Gradescope autograder (`deploy.py`).

May import: every stage and `grader.grade` (one submission); only `grader.api`, `grader.cli` and
`grader.admin_cli` import it.
"""
