"""Built-in tasks and task metrics."""

from . import contracts, metrics

__all__ = ["contracts", "metrics"]
