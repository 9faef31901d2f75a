"""`grid`: every combination of the space's grid values (Optuna's GridSampler)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..dimensions import grid
from .base import SearchStrategy

if TYPE_CHECKING:
    from ...config import Config, SearchConfig
    from ..dimensions import Dimension


class GridSearch(SearchStrategy):
    name = "grid"
    help = ("every combination of search.grid_points values per numeric dimension and every "
            "choice of a categorical one (Optuna GridSampler)")
    stop_reason = "grid exhausted"

    def sampler(self, search: SearchConfig, dims: list[Dimension], seed: int):
        import optuna

        return optuna.samplers.GridSampler(grid(dims, search.grid_points), seed=seed)

    @staticmethod
    def size(search: SearchConfig, dims: list[Dimension]) -> int:
        """The number of configurations in the grid."""
        return math.prod(len(v) for v in grid(dims, search.grid_points).values())

    def trial_limit(self, cfg: Config, dims: list[Dimension]) -> int | None:
        size = self.size(cfg.search, dims)
        return size if cfg.search.trials is None else min(size, cfg.search.trials)

    def plan(self, cfg: Config, dims: list[Dimension]) -> str | None:
        return f"grid: {self.size(cfg.search, dims)} configurations"
