"""`random`: independent samples of the space (Optuna's RandomSampler), until the budget."""

from __future__ import annotations

from .base import SearchStrategy


class RandomSearch(SearchStrategy):
    name = "random"
    help = "independent samples of the space (Optuna RandomSampler); needs a budget"
    needs_budget = True
