"""`tunelm search` and `tunelm worker`: budgeted, resumable, distributed hyperparameter search on
Optuna's storage. Strategies decide (pure, tested on synthetic curves); the TrialRunner executes."""

from .budget import Budget, Spent, spent
from .protocol import Protocol
from .pruners import DivergencePruner, make_pruner
from .space import Dimension, apply, default_space, parse_space
from .strategy import Curve, Strategy, Suggestion
from .study import SearchResult, best_config, describe, open_study, run_search

__all__ = [
    "Budget", "Curve", "Dimension", "DivergencePruner", "Protocol", "SearchResult", "Spent",
    "Strategy", "Suggestion", "apply", "best_config", "default_space", "describe", "make_pruner",
    "open_study", "parse_space", "run_search", "spent",
]
