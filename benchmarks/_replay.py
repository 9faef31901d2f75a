"""Replaying search strategies against a recorded grid: no training, only look-ups.

A trial of a strategy reads the recorded run of its configuration instead of training it:

- its eval losses are the recorded ones, reported to Optuna at their steps (so pruners act on
  them exactly as they would on a live run, and, as there, are not asked at the last one:
  `pruners.asks_pruner`), up to the step where it stops;
- its cost is the recorded seconds (CPU seconds of the recording process where recorded: on a
  shared machine the wall clock measures the neighbours' load as much as the configuration)
  x the share of the recorded steps it read (a probe at 20%, a
  trial pruned at step 8 of 20);
- a run that diverged when it was recorded is pruned, as the tool prunes it (TrainingError ->
  TrialPruned), and a configuration asked for twice costs twice.

What a strategy has *found* at any moment is the full-length, finished trial with the best
objective value, as `tunelm search` reports it: the lowest best eval loss, or with a `Selection`
of exact_match (`search.objective: exact_match`) the highest recorded exact match, which the
samplers then maximise too while the pruners still read the eval losses; short probes and
pruned trials are never a result. Its regret is measured on that configuration's recorded run:
relative regret in eval loss against the grid's best (natural text), or exact-match points
against the grid's best exact match (the demo task, whose eval loss approaches zero).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import optuna
from _grid import LR, RANK, WARMUP
from _recording import FINISHED, LOSS_SELECTION, Grid, Run, Selection, Trace, _Tracker

from tunelm.config import from_dict
from tunelm.search.dimensions import Dimension
from tunelm.search.proposals import Curve
from tunelm.search.pruners import asks_pruner, make_pruner
from tunelm.search.strategies import SearchStrategy, strategy_named

__all__ = ["FINISHED", "LR_INDEX", "STRATEGIES", "Grid", "Run", "Selection", "Trace", "replay",
           "replay_optuna", "replay_protocol"]
LR_INDEX = "lr_index"  # the learning rate as its index in the grid (log-spaced, ordinal)


# --- Optuna strategies: random, grid, default TPE, and TPE as `tunelm search` runs it ---------
# The samplers and the driving loop are the tool's own (tunelm.search.strategies); a replay
# only supplies the session: trials read from the recording instead of training.

class _OptunaDefaultTPE(SearchStrategy):
    """A baseline, not a tunelm strategy: Optuna's TPESampler as it comes."""

    name = "default-tpe"
    help = "Optuna's TPESampler with its defaults"

    def sampler(self, search, dims, seed):
        return optuna.samplers.TPESampler(seed=seed)


def _dims(grid: Grid) -> list[Dimension]:
    """The grid's dimensions as the tool's strategies see them: the learning rate as an index
    over its log-spaced values, the rank and the warmup as their recorded choices."""
    return [Dimension(LR_INDEX, "categorical", choices=tuple(range(len(grid.learning_rates)))),
            Dimension(RANK, "categorical", choices=tuple(grid.ranks)),
            Dimension(WARMUP, "categorical", choices=tuple(grid.warmups))]


def _suggest(trial: optuna.Trial, grid: Grid) -> dict:
    """The grid's dimensions as Optuna sees them: the learning rate as an ordinal index over its
    log-spaced values (a log-uniform float restricted to the grid), the rank categorical (as in
    the tool's space), the warmup a float on the grid's step."""
    i = trial.suggest_int(LR_INDEX, 0, len(grid.learning_rates) - 1)
    r = trial.suggest_categorical(RANK, list(grid.ranks))
    lo, hi = min(grid.warmups), max(grid.warmups)
    step = (hi - lo) / (len(grid.warmups) - 1)
    w = trial.suggest_float(WARMUP, lo, hi, step=step)
    w = min(grid.warmups, key=lambda x: abs(x - w))
    return {LR: grid.learning_rates[i], RANK: r, WARMUP: w}


def _strategy(name: str) -> SearchStrategy:
    return _OptunaDefaultTPE() if name == "default-tpe" else strategy_named(name)


OPTUNA_STRATEGIES = {
    # name: (strategy, tunelm pruner or None, recommended config first)
    "random": ("random", None, False),
    "grid": ("grid", None, False),
    "default-tpe": ("default-tpe", None, False),
    "tpe": ("tpe", "hyperband", True),  # the default of `tunelm search` until adaptive (issue 14)
    "tpe-nopruning": ("tpe", "none", True),
    "tpe+sh": ("tpe", "successive_halving", True),
}


@dataclass
class _ReplaySession:
    """The `Session` a strategy drives, over a recording: `sample` runs Optuna trials whose
    objective reads recorded curves; `enqueue`/`run_queued` replay proposed trials directly."""

    cfg: object
    dims: list
    study: optuna.Study | None = None
    objective: object = None
    callbacks: list = field(default_factory=list)
    run_one: object = None  # a Suggestion-like (params, tag, fraction) -> Curve
    history: list = field(default_factory=list)
    queued: list = field(default_factory=list)
    worker: bool = False
    stop: object = None
    out: object = None

    def stopped(self) -> bool:
        return False  # a replay spends what the strategy asks for; the tracker cuts the trace

    def curves(self) -> list:
        return list(self.history)

    def held_values(self) -> dict:
        return {}

    def enqueue(self, params: dict, tag: str, fraction: float = 1.0, **attrs) -> None:
        self.queued.append((params, tag, fraction))

    def run_queued(self, n: int) -> None:
        todo, self.queued = self.queued[:n], self.queued[n:]
        self.history += [self.run_one(*q) for q in todo]

    def sample(self, limit: int | None) -> None:
        self.study.optimize(self.objective, n_trials=limit, callbacks=self.callbacks)


def replay_optuna(grid: Grid, name: str, seed: int,
                  selection: Selection = LOSS_SELECTION) -> Trace:
    """One seed of an Optuna strategy, until the grid's whole compute is spent (a grid search:
    until every point ran once), optimising and selecting by `selection`."""
    strategy_name, pruner_name, enqueue = OPTUNA_STRATEGIES[name]
    strategy = _strategy(strategy_name)
    dims = _dims(grid)
    cfg = _replay_config(grid, trials=None)
    pruner = (make_pruner(pruner_name, grid.eval_steps, grid.planned_steps) if pruner_name
              else optuna.pruners.NopPruner())
    # a fixed study name: Hyperband assigns brackets by a hash of the name and trial number
    study = optuna.create_study(study_name=f"replay-{name}-{seed}", direction=selection.direction,
                                sampler=strategy.sampler(cfg.search, dims, seed), pruner=pruner)
    if enqueue:
        rec = grid.recommended
        study.enqueue_trial({LR_INDEX: grid.learning_rates.index(_nearest(grid, rec[LR])),
                             RANK: rec[RANK], WARMUP: rec[WARMUP]})
    track = _Tracker(grid, name, seed, selection)

    def objective(trial: optuna.Trial) -> float:
        run = grid.run_of(_suggest(trial, grid))
        for step, loss in run.evals:
            trial.report(loss if math.isfinite(loss) else math.inf, step)
            if asks_pruner(step, grid.planned_steps) and trial.should_prune():
                track.trace.pruned += 1
                track.add(run, run.cost_to(step), finished_full=False)
                raise optuna.TrialPruned()
        if run.diverged:  # the tool prunes a run its health guard stopped
            track.trace.pruned += 1
            track.add(run, run.cost_to(run.final_step), finished_full=False)
            raise optuna.TrialPruned()
        track.add(run, run.seconds, finished_full=True)
        return selection.value(run)

    def stop_when_spent(study: optuna.Study, trial) -> None:
        if track.exhausted:
            study.stop()

    # the strategy's own drive: sampled trials up to its trial limit (a grid: every point once)
    strategy.drive(_ReplaySession(cfg, dims, study, objective, [stop_when_spent]))
    return track.trace


def _replay_config(grid: Grid, trials: int | None):
    """A config around the grid's recommended values (what the strategies read)."""
    rec = grid.recommended
    return from_dict({"data": {"task": grid.task}, "lora": {"r": rec[RANK]},
                      "train": {"learning_rate": rec[LR], "warmup_ratio": rec[WARMUP]},
                      "search": {"trials": trials, "grid_points": 2}})


def _nearest(grid: Grid, lr: float) -> float:
    return min(grid.learning_rates, key=lambda x: abs(math.log(x / lr)))


# --- our staged protocol ---------------------------------------------------------------------

def replay_protocol(grid: Grid, seed: int = 0) -> Trace:
    """The tool's protocol strategy (`tunelm.search.strategies.protocol`, driving
    `tunelm.search.protocol.Protocol`) on the recording. A probe at fraction f reads the
    recorded full-length curve up to f x the planned steps. (The real tool lays the schedule
    over the shortened probe -- warmup and cosine decay inside those steps -- so the prefix of a
    full run is an approximation of a probe.) The protocol is deterministic: every seed gives
    the same trace."""
    track = _Tracker(grid, "protocol", seed)

    def run_one(params: dict, tag: str, fraction: float) -> Curve:
        run = grid.run_of(params)
        steps = max(1, math.ceil(grid.planned_steps * fraction))  # as tunelm.plan does
        failed = run.diverged and run.final_step <= steps
        track.add(run, run.cost_to(steps), finished_full=fraction >= 1.0 and not failed)
        return Curve(params=params, eval_losses=run.evals_to(steps),
                     train_losses=[t for t in run.train if t[0] <= steps],
                     state="failed" if failed else "complete", tag=tag, fraction=fraction)

    strategy_named("protocol").drive(
        _ReplaySession(_replay_config(grid, trials=None), [], run_one=run_one))
    return track.trace


STRATEGIES = ("protocol", *OPTUNA_STRATEGIES)


def replay(grid: Grid, name: str, seed: int, selection: Selection = LOSS_SELECTION) -> Trace:
    if name == "protocol":
        if selection != LOSS_SELECTION:
            raise ValueError("the protocol replay selects on the eval loss only")
        return replay_protocol(grid, seed)
    if name not in OPTUNA_STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's experimental and duplicate-grid warnings
        return replay_optuna(grid, name, seed, selection)
