"""What a search strategy is to tunelm: one small object per strategy, in one registry.

A strategy answers, for a config, everything the rest of the tool asks about it:

- how it samples: `sampler(search, dims, seed)`, an Optuna sampler;
- which budgets apply: `counts_trials` (does search.trials bound it), `needs_budget` (does it
  refuse to start with none), `trial_limit(cfg, dims)` (the most trials the study may hold);
- how it drives a study: `drive(session)`, given a `Session` (the study and the operations a
  strategy may use on it); the default asks its sampler for trials until the budget is spent;
- what a whole run costs: `run_equivalents(cfg, dims)`, in full-run equivalents (fewest, most);
- whether workers may join: `workers_may_join` (`tunelm worker`), `local_workers`
  (`search.workers` > 1), and any further rule on the config: `config_problems(search)`;
- its plan for `--dry-run`: `plan(cfg, dims)`; why it stopped when its budget did not stop it:
  `stop_reason`.

Strategies import nothing that imports the config (the config validates names and rules through
the registry); what a strategy needs at run time comes through its `Session`.

Adding a strategy
-----------------
1. Write `src/tunelm/search/strategies/<name>.py` with a subclass of `SearchStrategy`: set
   `name` and `help` (one line: it becomes the `search.strategy` help and `--strategy` choices),
   override what differs from the defaults below (a sampler strategy often needs only
   `sampler`; a staged one overrides `drive` and `run_equivalents`), and keep any decision
   logic in a pure state machine beside it (like `search/protocol.py`), tested on synthetic
   curves.
2. Add one instance to `ALL` in `src/tunelm/search/strategies/__init__.py`.
3. Add its test (tests/test_search_strategies.py runs every registered strategy's contract).
Nothing else: the CLI's choices, config validation, `--dry-run`, the cost estimate, recommend's
budget sketch and the replay benchmark all read the registry.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ..budget import Budget

if TYPE_CHECKING:  # type hints only: the config imports this registry
    from ...config import Config, SearchConfig
    from ..dimensions import Dimension
    from ..proposals import Curve


class Session(Protocol):
    """A study being searched, as a strategy's `drive` sees it (`search/session.py` builds one;
    the replay benchmark builds one over recorded runs)."""

    cfg: Config
    dims: list[Dimension]
    worker: bool  # True in `tunelm worker`: a process that joined a study another one started
    # for a strategy with a driver of its own (pbt): the Optuna study, the objective that runs
    # a trial, the callbacks after each, the budget check (`check(study)`), the study directory
    study: Any
    objective: Any
    callbacks: list
    stop: Any
    out: Path

    def stopped(self) -> bool:
        """The budget is spent or a trial found bad input: drive no further."""

    def curves(self) -> list[Curve]:
        """Every finished trial, as the pure strategies see them."""

    def held_values(self) -> dict:
        """The config's value of every unconditional dimension (what a stage does not tune)."""

    def enqueue(self, params: dict, tag: str, fraction: float = 1.0, **attrs) -> None:
        """Queue a trial with these values, run on `fraction` of the planned steps."""

    def run_queued(self, n: int) -> None:
        """Run `n` trials, queued ones first (the sampler proposes the rest)."""

    def sample(self, limit: int | None) -> None:
        """Run sampled trials until the budget or `limit` trials are spent; safe for many
        workers (`search/loop.py`)."""


class SearchStrategy:
    """The defaults are those of a sampler strategy (random sampling, any number of workers)."""

    name: ClassVar[str]
    help: ClassVar[str]
    stop_reason: ClassVar[str] = "done"  # when neither the budget nor bad input stopped it
    counts_trials: ClassVar[bool] = True  # search.trials bounds the study
    needs_budget: ClassVar[bool] = False  # refuses to run without trials, hours or a timeout
    prunes: ClassVar[bool] = True  # the study's pruner (search.pruner) applies to its trials
    workers_may_join: ClassVar[bool] = True  # `tunelm worker` may run its trials
    local_workers: ClassVar[bool] = True  # search.workers > 1 starts local worker processes
    resumes_training_state: ClassVar[bool] = False  # a trial continues another's checkpoint

    def sampler(self, search: SearchConfig, dims: list[Dimension], seed: int):
        """The Optuna sampler of a study (each worker gets its own `seed`)."""
        import optuna  # here, not at the top: importing the config must not load Optuna

        return optuna.samplers.RandomSampler(seed=seed)

    def budget(self, search: SearchConfig) -> Budget:
        """The budgets that bound a study of this strategy."""
        return Budget(search.trials if self.counts_trials else None, search.budget_hours,
                      search.timeout_minutes)

    def trial_limit(self, cfg: Config, dims: list[Dimension]) -> int | None:
        """The most trials the study may hold (None: only the budget bounds it)."""
        return cfg.search.trials if self.counts_trials else None

    def first_trials(self, cfg: Config, dims: list[Dimension]) -> list[tuple[dict, str]]:
        """Trials queued before any is sampled, when the study is new: (values, tag) each."""
        return []

    def run_equivalents(self, cfg: Config, dims: list[Dimension]) -> tuple[float, float] | None:
        """(fewest, most) full runs a study spends; None when only a budget bounds it."""
        limit = self.trial_limit(cfg, dims)
        return None if limit is None else (float(limit), float(limit))

    def plan(self, cfg: Config, dims: list[Dimension]) -> str | None:
        """What `--dry-run` says the strategy will do (None: the budget line says it all)."""
        return None

    def config_problems(self, search: SearchConfig) -> list[str]:
        """This strategy's own rules on the search section, as messages naming the field, the
        value and what is accepted (`search.workers` against `local_workers` is checked for
        every strategy by the registry)."""
        return []

    why_one_process: ClassVar[str] = "it runs from one process"  # when not local_workers

    def drive(self, session: Session) -> None:
        """Run the study until the strategy is done or the budget is spent."""
        session.sample(self.trial_limit(session.cfg, session.dims))

