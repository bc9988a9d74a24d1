"""Intake: a submission as the student handed it in, copied and read, never run.

Owns the throwaway copy (folders, single files, zips, notebooks) and the discovery of the
classes that answer each item, with `ast` (`submission.py`).

May import: the top-level tools and `grader.assignment`.
"""
