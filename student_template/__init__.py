"""Your starting point: fill in every method that raises NotImplementedError."""
