"""`python -m grader` is the same as the `grade` command."""
from grader.cli import program

if __name__ == "__main__":
    program()
