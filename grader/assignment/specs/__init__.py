"""Assignment specs shipped with the grader (TOML data, read by `grader.assignment.spec`)."""
