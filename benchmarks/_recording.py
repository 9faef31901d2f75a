"""A recorded grid as the replay reads it (`Run`, `Grid`), what one replay did (`Trace`), and
what a replayed study selects on (`Selection`: the eval loss, or a task metric such as exact
match, as `search.objective` sets it). `_Tracker` keeps the best full-length finished trial by
that selection, as `tunelm search` reports it (the first trial to reach the best value keeps it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from _grid import LR, RANK, WARMUP

from tunelm.search.goal import LOSS, default_direction, value_of

FINISHED = ("completed", "early_stopping")


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

    def __init__(self, grid: Grid, strategy: str, seed: int,
                 selection: Selection | None = None):
        self.grid, self.total = grid, grid.total_seconds
        self.selection = selection or LOSS_SELECTION
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
        if finished_full and self.selection.better(run, self.best):
            self.best = run
        self.trace.costs.append(self.spent / self.total)
        self.trace.found.append(self.best)
        self.trace.regrets.append(self.grid.regret(self.best))

    @property
    def exhausted(self) -> bool:
        return self.spent >= self.total * (1 - 1e-9)


@dataclass(frozen=True)
class Selection:
    """What a replayed study optimises: `search.objective` (the eval loss or exact_match) in its
    default direction. A trial's value is read from its recorded run through the tool's own
    `goal.value_of` (a task metric is scored once, after training); the pruners read the eval
    loss whatever the objective, as the tool's pruners do (`search/pruners.py`)."""

    objective: str = LOSS

    def __post_init__(self):
        if self.objective not in (LOSS, "exact_match"):
            raise ValueError(f"objective must be {LOSS} or exact_match, got {self.objective!r}")

    @property
    def direction(self) -> str:
        return default_direction(self.objective)

    def value(self, run: Run) -> float:
        """The trial's objective value, as the tool computes it from its result.json."""
        task = {"metric": "exact_match", "exact_match": run.exact_match}
        return value_of(self.objective, self.direction,
                        {"best_eval_loss": run.best_eval_loss, "task_metrics": task})

    def better(self, run: Run, than: Run | None) -> bool:
        """True when `run` is strictly better than `than` (None: nothing yet)."""
        if than is None:
            return True
        a, b = self.value(run), self.value(than)
        return a < b if self.direction == "minimize" else a > b


LOSS_SELECTION = Selection()
