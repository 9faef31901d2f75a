"""`tunelm search` and `tunelm worker`: budgeted, resumable, distributed hyperparameter search on
Optuna's storage. Strategies decide (pure, tested on synthetic curves); the TrialObjective
executes.

    from tunelm.search import run_search, describe
    print(describe(run_search(cfg, "runs/my-study")))

Importing the package loads none of its modules: the config imports the strategy registry
(`tunelm.search.strategies`) to validate `search.strategy`, and the names below load their
module (Optuna, the trial machinery) when first used.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "Budget": "budget", "Spent": "budget", "spent": "budget",
    "Protocol": "protocol",
    "DivergencePruner": "pruners", "make_pruner": "pruners",
    "Dimension": "dimensions", "apply": "space", "default_space": "space",
    "parse_space": "space",
    "Curve": "proposals", "Proposer": "proposals", "Suggestion": "proposals",
    "SearchStrategy": "strategies", "strategy_named": "strategies",
    "SearchResult": "results", "describe": "results", "best_config": "results",
    "load_study": "opener", "open_study": "opener", "run_search": "run",
    "locate": "storage", "create_for_workers": "workers",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'tunelm.search' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
