"""`tpe`: Bayesian optimisation (Optuna's TPESampler), the configured (recommended) values tried
first, the space centred on them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..dimensions import config_values
from .base import SearchStrategy

if TYPE_CHECKING:
    from ...config import Config, SearchConfig
    from ..dimensions import Dimension

STARTUP_TRIALS = 5  # random trials before TPE models the space (the recommended one included)


class TPESearch(SearchStrategy):
    name = "tpe"
    help = ("Bayesian optimisation (Optuna TPESampler), the recommended config first; needs a "
            "budget")
    needs_budget = True

    def sampler(self, search: SearchConfig, dims: list[Dimension], seed: int):
        import optuna

        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=STARTUP_TRIALS)

    def first_trials(self, cfg: Config, dims: list[Dimension]) -> list[tuple[dict, str]]:
        return [(config_values(cfg, dims), "recommended")]
