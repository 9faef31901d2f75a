"""Population-based training (Jaderberg et al. 2017, "Population Based Training of Neural
Networks"), as a pure state machine over member-generation records.

A population of `population` members trains in `generations` windows of equal steps. At the end
of each window the members are ranked by their eval loss at that moment; the bottom `quantile`
copies the weights and optimizer state of a member of the top `quantile` (exploit) and perturbs
its hyperparameters (explore): each continuous (float) dimension is resampled from the space with
`resample_probability`, else scaled by 0.8 or 1.2 and kept within the dimension's bounds. The
other members continue from their own state with their own values.

Integer and categorical dimensions (LoRA rank, batch size) shape the weights or the data order,
which a copied checkpoint cannot change: they are drawn once, for generation 0, and inherited
with the weights.

    pbt = PBT(dims, start={"train.learning_rate": 2e-4, ...}, population=4, generations=3)
    steps = pbt.propose([])                  # generation 0: the start config and 3 samples
    steps = pbt.propose(results)             # [] while a generation runs, None when done

`propose` depends only on the records and the seed (each generation draws from its own seeded
generator), so a coordinator that restarts proposes the same generation again. Syne Tune's
`PopulationBasedTraining` (syne_tune/optimizer/schedulers/pbt.py) makes the same decisions
per trial as results arrive; here they are made per generation, which is what lets every member
of a generation run as an ordinary queued Optuna trial on any worker.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from .space import Dimension

SCALES = (0.8, 1.2)
PBT_ATTR = "pbt"  # a trial's member, generation, parent, checkpoint to start from, step window
CHECKPOINT_ATTR = "pbt_checkpoint"  # artifact id of a trial's training state at its window's end


@dataclass(frozen=True)
class MemberResult:
    """A finished member-generation: its values, where it started from and how it ended."""

    member: int
    generation: int
    params: dict
    loss: float | None  # eval loss at the end of the generation; None when it failed or diverged
    checkpoint: str | None  # artifact id of its training state at the end, None without one
    parent: int | None = None  # member whose checkpoint it started from (None: from scratch)


@dataclass(frozen=True)
class MemberStep:
    """A member-generation to run: values, and the checkpoint it starts from."""

    member: int
    generation: int
    params: dict
    parent: int | None  # itself when it continues, another member when it exploited
    checkpoint: str | None  # the parent's checkpoint at the end of the previous generation
    explore: dict = field(default_factory=dict)  # {dimension: "x0.8" | "x1.2" | "resample"}

    @property
    def exploited(self) -> bool:
        return self.parent is not None and self.parent != self.member


def sample(d: Dimension, rng: random.Random):
    """One value of a dimension, uniform (log-uniform on a log scale)."""
    if d.kind == "categorical":
        return rng.choice(list(d.choices))
    if d.kind == "int":
        return rng.randint(int(d.low), int(d.high))
    if d.log:
        return _round(math.exp(rng.uniform(math.log(d.low), math.log(d.high))))
    return _round(rng.uniform(d.low, d.high))


def _round(x: float) -> float:
    return float(f"{x:.4g}")


def _alive(r: MemberResult) -> bool:
    return r.checkpoint is not None and r.loss is not None and math.isfinite(r.loss)


@dataclass
class PBT:
    """The population-based training schedule over the float dimensions of `dims`."""

    dims: list[Dimension]
    start: dict  # member 0's values in generation 0 (the configured, recommended ones)
    population: int = 4
    generations: int = 3
    quantile: float = 0.25
    resample_probability: float = 0.25
    seed: int = 0
    log: list[str] = field(default_factory=list)

    def _rng(self, generation: int) -> random.Random:
        return random.Random(f"pbt:{self.seed}:{generation}")

    def initial(self) -> list[MemberStep]:
        """Generation 0: the start config, then members sampled from the space."""
        rng = self._rng(0)
        steps = []
        for m in range(self.population):
            params: dict = {}
            for d in self.dims:
                if not d.active(params):
                    continue
                params[d.name] = (self.start[d.name] if m == 0 and d.name in self.start
                                  else sample(d, rng))
            if m == 0:
                params.update({k: v for k, v in self.start.items() if k not in params})
            steps.append(MemberStep(m, 0, params, None, None))
        return steps

    def explore(self, params: dict, rng: random.Random) -> tuple[dict, dict]:
        """Perturbed values and what was done to each float dimension."""
        out, how = dict(params), {}
        for d in self.dims:
            if d.kind != "float" or d.name not in out or not d.active(out):
                continue
            if rng.random() < self.resample_probability:
                out[d.name], how[d.name] = sample(d, rng), "resample"
            else:
                scale = rng.choice(SCALES)
                out[d.name] = _round(min(d.high, max(d.low, out[d.name] * scale)))
                how[d.name] = f"x{scale}"
        return out, how

    def propose(self, results: list[MemberResult]) -> list[MemberStep] | None:
        """The next generation's steps, [] while the current one is unfinished, None when done
        (every generation run, or every member failed). `log` says why members copied whom."""
        self.log.clear()
        if not results:
            return self.initial()
        last = max(r.generation for r in results)
        current = {r.member: r for r in results if r.generation == last}
        if len(current) < self.population:
            return []
        if last + 1 >= self.generations:
            return None
        ranked = sorted((r for r in current.values() if _alive(r)), key=lambda r: r.loss)
        if not ranked:
            self.log.append(f"generation {last}: every member failed; stopping")
            return None
        k = int(self.quantile * len(current))
        top = ranked[:max(1, k)]
        bottom = {r.member for r in ranked[len(ranked) - k:] if r not in top} if k else set()
        bottom |= {m for m, r in current.items() if not _alive(r)}  # no state to continue from
        rng = self._rng(last + 1)
        steps = []
        for m in sorted(current):
            mine = current[m]
            if m not in bottom:
                steps.append(MemberStep(m, last + 1, dict(mine.params), m, mine.checkpoint))
                continue
            parent = rng.choice(top)
            params, how = self.explore(parent.params, rng)
            self.log.append(f"generation {last + 1}: member {m} (loss {_fmt(mine.loss)}) "
                            f"copies member {parent.member} (loss {_fmt(parent.loss)}); "
                            + ", ".join(f"{k_} {v}" for k_, v in how.items()))
            steps.append(MemberStep(m, last + 1, params, parent.member, parent.checkpoint, how))
        return steps


def _fmt(x: float | None) -> str:
    return "failed" if x is None else f"{x:.4f}"


def ancestry(results: list[MemberResult], member: int, generation: int) -> list[tuple[int, int]]:
    """The (member, generation) whose weights a member-generation continued, back to generation
    0: [(m0, 0), (m1, 1), ..., (member, generation)]."""
    by_key = {(r.member, r.generation): r for r in results}
    chain = [(member, generation)]
    while generation > 0:
        r = by_key.get((member, generation))
        if r is None or r.parent is None:
            break
        member, generation = r.parent, generation - 1
        chain.append((member, generation))
    return chain[::-1]


def schedules(results: list[MemberResult]) -> dict[int, list[MemberResult]]:
    """Each member's records by generation: its hyperparameter schedule and parents."""
    out: dict[int, list[MemberResult]] = {}
    for r in sorted(results, key=lambda r: (r.member, r.generation)):
        out.setdefault(r.member, []).append(r)
    return out


__all__ = ["CHECKPOINT_ATTR", "PBT", "PBT_ATTR", "MemberResult", "MemberStep", "ancestry", "sample", "schedules"]
