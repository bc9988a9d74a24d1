"""nn-grader: grades numpy neural-network layers and objectives against SymPy-derived ground truth."""

__version__ = "0.1.0"
