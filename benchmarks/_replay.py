"""Replaying search strategies against a recorded grid: no training, only look-ups.

A trial of a strategy reads the recorded run of its configuration instead of training it:

- its eval losses are the recorded ones, reported to Optuna at their steps (so pruners act on
  them exactly as they would on a live run), up to the step where it stops;
- its cost is the recorded seconds (CPU seconds of the recording process where recorded: on a
  shared machine the wall clock measures the neighbours' load as much as the configuration)
  x the share of the recorded steps it read (a probe at 20%, a
  trial pruned at step 8 of 20);
- a run that diverged when it was recorded is pruned, as the tool prunes it (TrainingError ->
  TrialPruned), and a configuration asked for twice costs twice.

What a strategy has *found* at any moment is the full-length, finished trial with the lowest
objective (best eval loss), as `tunelm search` reports it; short probes and pruned trials are
never a result. Its regret is measured on that configuration's recorded run: relative regret in
eval loss against the grid's best (natural text), or exact-match points against the grid's best
exact match (the demo task, whose eval loss approaches zero).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import optuna
from _grid import LR, RANK, WARMUP

from tunelm.config import from_dict
from tunelm.search.dimensions import Dimension
from tunelm.search.proposals import Curve
from tunelm.search.pruners import make_pruner
from tunelm.search.strategies import SearchStrategy, strategy_named

FINISHED = ("completed", "early_stopping")
LR_INDEX = "lr_index"  # the learning rate as its index in the grid (log-spaced, ordinal)


@dataclass(frozen=True)
class Run:
    """One recorded grid point."""

    params: dict
    evals: tuple  # ((step, eval loss), ...)
    train: tuple  # ((step, train loss), ...)
    seconds: float
    final_step: int
    stop_reason: str
    best_eval_loss: float | None
    exact_match: float | None

    @property
    def diverged(self) -> bool:
        return self.stop_reason not in FINISHED

    def cost_to(self, step: int) -> float:
        """Recorded seconds x the share of the recorded steps up to `step`."""
        return self.seconds * min(step, self.final_step) / max(1, self.final_step)

    def evals_to(self, step: int) -> list[tuple[int, float]]:
        return [(s, v) for s, v in self.evals if s <= step]


@dataclass
class Grid:
    """A recorded grid (one task) and how regret is counted on it."""

    task: str
    runs: dict  # (lr, r, warmup) -> Run
    planned_steps: int
    eval_steps: int
    recommended: dict
    learning_rates: list
    ranks: list
    warmups: list
    unit: str = "relative"  # relative (eval loss) | points (exact match)

    @classmethod
    def from_record(cls, data: dict) -> Grid:
        runs = {}
        for r in data["runs"]:
            p = r["params"]
            runs[(p[LR], p[RANK], p[WARMUP])] = Run(
                params=p, evals=tuple(tuple(e) for e in r["evals"] if e[1] is not None),
                train=tuple((t[0], t[1]) for t in r["train"] if t[1] is not None),
                seconds=r.get("cpu_seconds") or r["seconds"], final_step=r["final_step"] or 0,
                stop_reason=r["stop_reason"] or "failed",
                best_eval_loss=r["best_eval_loss"], exact_match=r["exact_match"])
        g = data["grid"]
        size = len(g["learning_rates"]) * len(g["ranks"]) * len(g["warmups"])
        if len(runs) != size:
            raise ValueError(f"the {data['task']} grid holds {len(runs)} of its {size} runs; "
                             "finish the recording first (benchmarks/search_efficiency.py)")
        return cls(task=data["task"], runs=runs, planned_steps=data["cap"]["steps"],
                   eval_steps=data["cap"]["eval_steps"], recommended=data["recommended"],
                   learning_rates=g["learning_rates"], ranks=g["ranks"], warmups=g["warmups"],
                   unit="points" if data["task"] == "contracts" else "relative")

    def run_of(self, params: dict) -> Run:
        return self.runs[(params[LR], params[RANK], params[WARMUP])]

    @property
    def total_seconds(self) -> float:
        return sum(r.seconds for r in self.runs.values())

    def _usable(self) -> list[Run]:
        return [r for r in self.runs.values() if not r.diverged and r.best_eval_loss is not None]

    def regret(self, run: Run | None) -> float:
        """Regret of having found `run` (inf before anything is found): relative eval loss
        against the grid's best in % (natural text), or exact-match points (the demo task)."""
        if run is None:
            return math.inf
        if self.unit == "points":
            best = max(r.exact_match or 0.0 for r in self.runs.values())
            return 100 * (best - (run.exact_match or 0.0))
        best = min(r.best_eval_loss for r in self._usable())
        return 100 * (run.best_eval_loss - best) / best


@dataclass
class Trace:
    """What one strategy did on one seed: cumulative cost (fraction of the grid's compute) and
    regret after each trial."""

    strategy: str
    seed: int
    costs: list = field(default_factory=list)
    regrets: list = field(default_factory=list)
    trials: int = 0
    pruned: int = 0
    repeats: int = 0
    params: list = field(default_factory=list)  # of each trial, in order
    found: list = field(default_factory=list)  # the Run found after each trial (None: nothing)

    def rescored(self, grid: Grid) -> Trace:
        """The same trace with regret counted by `grid` (another unit on the same recording)."""
        return Trace(self.strategy, self.seed, list(self.costs),
                     [grid.regret(r) for r in self.found], self.trials, self.pruned,
                     self.repeats, list(self.params), list(self.found))

    def regret_at(self, fraction: float) -> float:
        """Regret of what was found once `fraction` of the grid's compute was spent."""
        out = math.inf
        for c, r in zip(self.costs, self.regrets):
            if c > fraction + 1e-9:
                break
            out = r
        return out

    def first_within(self, threshold: float) -> float:
        """The compute fraction at which regret first reached `threshold` (inf: never)."""
        for c, r in zip(self.costs, self.regrets):
            if r <= threshold:
                return c
        return math.inf


class _Tracker:
    """Accumulates cost and the best full-length finished trial of one replay."""

    def __init__(self, grid: Grid, strategy: str, seed: int):
        self.grid, self.total = grid, grid.total_seconds
        self.trace = Trace(strategy, seed)
        self.spent = 0.0
        self.best: Run | None = None
        self.seen: set = set()

    def add(self, run: Run, cost: float, finished_full: bool) -> None:
        self.spent += cost
        key = (run.params[LR], run.params[RANK], run.params[WARMUP])
        self.trace.trials += 1
        self.trace.params.append(run.params)
        self.trace.repeats += key in self.seen
        self.seen.add(key)
        if finished_full and (self.best is None or run.best_eval_loss < self.best.best_eval_loss):
            self.best = run
        self.trace.costs.append(self.spent / self.total)
        self.trace.found.append(self.best)
        self.trace.regrets.append(self.grid.regret(self.best))

    @property
    def exhausted(self) -> bool:
        return self.spent >= self.total * (1 - 1e-9)


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


def replay_optuna(grid: Grid, name: str, seed: int) -> Trace:
    """One seed of an Optuna strategy, until the grid's whole compute is spent (a grid search:
    until every point ran once)."""
    strategy_name, pruner_name, enqueue = OPTUNA_STRATEGIES[name]
    strategy = _strategy(strategy_name)
    dims = _dims(grid)
    cfg = _replay_config(grid, trials=None)
    pruner = (make_pruner(pruner_name, grid.eval_steps, grid.planned_steps) if pruner_name
              else optuna.pruners.NopPruner())
    # a fixed study name: Hyperband assigns brackets by a hash of the name and trial number
    study = optuna.create_study(study_name=f"replay-{name}-{seed}", direction="minimize",
                                sampler=strategy.sampler(cfg.search, dims, seed), pruner=pruner)
    if enqueue:
        rec = grid.recommended
        study.enqueue_trial({LR_INDEX: grid.learning_rates.index(_nearest(grid, rec[LR])),
                             RANK: rec[RANK], WARMUP: rec[WARMUP]})
    track = _Tracker(grid, name, seed)

    def objective(trial: optuna.Trial) -> float:
        run = grid.run_of(_suggest(trial, grid))
        for step, loss in run.evals:
            trial.report(loss if math.isfinite(loss) else math.inf, step)
            if trial.should_prune():
                track.trace.pruned += 1
                track.add(run, run.cost_to(step), finished_full=False)
                raise optuna.TrialPruned()
        if run.diverged:  # the tool prunes a run its health guard stopped
            track.trace.pruned += 1
            track.add(run, run.cost_to(run.final_step), finished_full=False)
            raise optuna.TrialPruned()
        track.add(run, run.seconds, finished_full=True)
        return run.best_eval_loss

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


def replay(grid: Grid, name: str, seed: int) -> Trace:
    if name == "protocol":
        return replay_protocol(grid, seed)
    if name not in OPTUNA_STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's experimental and duplicate-grid warnings
        return replay_optuna(grid, name, seed)
