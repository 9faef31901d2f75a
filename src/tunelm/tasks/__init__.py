"""Built-in tasks and task metrics."""

from . import contracts, docstrings, metrics

__all__ = ["contracts", "docstrings", "metrics"]
