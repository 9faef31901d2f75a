"""What a staged strategy sees and decides: finished trials in (`Curve`), trials to run out
(`Suggestion`), and the pure state machine between them (`Proposer`).

The staged protocol is such a state machine over these records, so it is unit-tested with
synthetic learning curves and no training; its `SearchStrategy` (search/strategies/protocol.py)
drives it on a study. Grid, random and TPE are Optuna samplers and need no proposer.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Curve:
    """A finished trial as a strategy sees it."""

    params: dict
    eval_losses: list[tuple[int, float]]  # (step, eval loss)
    train_losses: list[tuple[int, float]] = field(default_factory=list)
    state: str = "complete"  # complete | pruned | failed
    tag: str = ""  # the stage that proposed it
    fraction: float = 1.0  # share of the planned steps it ran for


@dataclass(frozen=True)
class Suggestion:
    """A trial to run: its parameters (config paths), its share of the steps, its stage."""

    params: dict
    fraction: float
    tag: str


class Proposer(abc.ABC):
    @abc.abstractmethod
    def propose(self, history: list[Curve]) -> list[Suggestion] | None:
        """The trials to run next given every finished one: a list (empty: wait for the running
        ones to finish), or None when the strategy is done."""
