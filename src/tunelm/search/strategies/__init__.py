"""The search strategies, one module each, in one registry: name -> strategy.

    from tunelm.search.strategies import strategy_named, NAMES
    strategy_named("protocol").run_equivalents(cfg, dims)   # (1.8, 2.8) full runs

The CLI's `--strategy` choices, the config's validation (`search.strategy` and each strategy's
rules), `--dry-run`'s plan, the cost estimate, recommend's budget sketch and the replay benchmark
read this registry; nothing else names a strategy. To add one, see `base.py`'s docstring.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...errors import ConfigError
from .adaptive import AdaptiveSearch
from .base import SearchStrategy, Session
from .grid import GridSearch
from .pbt import PBTSearch
from .protocol import ProtocolSearch
from .random import RandomSearch
from .tpe import TPESearch

if TYPE_CHECKING:
    from ...config import SearchConfig

ALL: tuple[SearchStrategy, ...] = (GridSearch(), RandomSearch(), TPESearch(), ProtocolSearch(),
                                   PBTSearch(), AdaptiveSearch())
REGISTRY: dict[str, SearchStrategy] = {s.name: s for s in ALL}
NAMES: tuple[str, ...] = tuple(REGISTRY)


def strategy_named(name: str) -> SearchStrategy:
    """The registered strategy `name`; ConfigError naming the known ones otherwise."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ConfigError(f"search.strategy must be one of {', '.join(NAMES)}, "
                          f"got {name!r}") from None


def config_problems(search: SearchConfig) -> list[str]:
    """Every rule of the chosen strategy on the search section (an unknown name is the config's
    `choice` check, not repeated here)."""
    strategy = REGISTRY.get(search.strategy) if isinstance(search.strategy, str) else None
    if strategy is None:
        return []
    problems = []
    workers = search.workers
    if (not strategy.local_workers and isinstance(workers, int)
            and not isinstance(workers, bool) and workers > 1):
        local = [s.name for s in ALL if s.local_workers]
        choices = f"{', '.join(local[:-1])} or {local[-1]}" if len(local) > 1 else local[0]
        problems.append(f"search.workers {workers} does not apply to the {strategy.name} "
                        f"strategy: {strategy.why_one_process}; use {choices}, or "
                        "search.workers 1")
    return problems + strategy.config_problems(search)


def help_line() -> str:
    """`grid | random | tpe | protocol | pbt`: the config's help text for search.strategy."""
    return " | ".join(NAMES)


__all__ = ["ALL", "NAMES", "REGISTRY", "SearchStrategy", "Session", "config_problems",
           "help_line", "strategy_named"]
