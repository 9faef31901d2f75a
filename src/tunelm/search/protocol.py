"""The staged "minimum viable protocol": learning rate, then rank, then warmup, then the final run.

1. three learning rates over one decade around the recommendation, each on 20% of the planned
   steps; keep the one whose loss falls most steadily (if all three diverge, a decade lower once);
2. rank r against 2r at that rate; keep 2r only if its eval loss is more than 2% lower;
3. warmup 0.05 against 0.1, only if the early training loss was spiky;
4. the final full run with what was kept.

A pure state machine: `propose(history)` reads finished trials (synthetic curves in the tests)
and returns the next trials to run, or None when the protocol is done. Weight decay, dropout and
alpha stay at their configured values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .proposals import Curve, Proposer, Suggestion

LR = "train.learning_rate"
RANK = "lora.r"
WARMUP = "train.warmup_ratio"


def is_spiky(train_losses: list[float], jump: float = 1.25, skip: int = 2) -> bool:
    """True when the loss jumps up by more than `jump`x between steps at least twice, or by more
    than 1.5x once (the first `skip` steps, still in warmup, are ignored)."""
    ratios = [b / a for a, b in zip(train_losses[skip:], train_losses[skip + 1:]) if a > 0]
    return sum(r > jump for r in ratios) >= 2 or any(r > 1.5 for r in ratios)


def steady(curve: Curve, tolerance: float = 0.02) -> bool:
    """Finished, never diverged, and its eval loss still at (or within 2% of) its best at the end:
    a loss that falls steadily. Spikes in the train loss are the warmup stage's business."""
    if curve.state != "complete" or not curve.eval_losses:
        return False
    losses = [v for _, v in curve.eval_losses]
    if not all(math.isfinite(v) for v in losses):
        return False
    return losses[-1] <= min(losses) * (1 + tolerance)


def score(curve: Curve) -> float:
    """Lower is better: the last eval loss (the best for curves that turned up)."""
    if not curve.eval_losses:
        return math.inf
    return curve.eval_losses[-1][1]


@dataclass
class Protocol(Proposer):
    """The staged protocol around a starting config (`base` holds its learning rate, rank and
    warmup)."""

    base: dict
    probe_fraction: float = 0.2
    decade_points: int = 3
    rank_gain: float = 0.02
    warmups: tuple = (0.05, 0.1)
    tuned_rank: bool = True
    log: list[str] = field(default_factory=list)

    def _lr_points(self, center: float) -> list[float]:
        half = self.decade_points // 2
        return [float(f"{center * 10 ** ((i - half) / (2 * half)):.3g}")
                for i in range(self.decade_points)]

    def _probe(self, params: dict, tag: str) -> Suggestion:
        return Suggestion({**self.base, **params}, self.probe_fraction, tag)

    def propose(self, history: list[Curve]) -> list[Suggestion] | None:
        by_tag: dict[str, list[Curve]] = {}
        for c in history:
            by_tag.setdefault(c.tag, []).append(c)

        # 1. learning rate
        lr_round = by_tag.get("lr", [])
        retry = by_tag.get("lr-lower", [])
        if not lr_round:
            return [self._probe({LR: lr}, "lr") for lr in self._lr_points(self.base[LR])]
        if len(lr_round) < self.decade_points:
            return []  # wait for the stage to finish
        probes = lr_round + retry
        if not any(c.state == "complete" for c in probes):
            if not retry:
                lower = self.base[LR] / 10
                self.log.append(f"every learning rate diverged; trying a decade lower ({lower:.3g})")
                return [self._probe({LR: lr}, "lr-lower") for lr in self._lr_points(lower)]
            if len(retry) < self.decade_points:
                return []
            self.log.append("every learning rate diverged, also a decade lower: stopping")
            return None
        if retry and len(retry) < self.decade_points:
            return []
        candidates = [c for c in probes if steady(c)] or [c for c in probes if c.state == "complete"]
        best_lr = min(candidates, key=score)
        chosen = {LR: best_lr.params[LR]}

        # 2. rank r vs 2r
        if self.tuned_rank and RANK in self.base:
            rank_runs = by_tag.get("rank", [])
            if not rank_runs:
                return [self._probe({**chosen, RANK: 2 * self.base[RANK]}, "rank")]
            double = rank_runs[0]
            keep = (double.state == "complete"
                    and score(double) < score(best_lr) * (1 - self.rank_gain))
            chosen[RANK] = 2 * self.base[RANK] if keep else self.base[RANK]
        base_run = best_lr

        # 3. warmup, only if the early loss was spiky
        if is_spiky([v for _, v in base_run.train_losses]):
            warm_runs = by_tag.get("warmup", [])
            todo = [w for w in self.warmups if w != self.base.get(WARMUP)]
            if not warm_runs and todo:
                return [self._probe({**chosen, WARMUP: w}, "warmup") for w in todo]
            if len(warm_runs) < len(todo):
                return []
            options = [c for c in warm_runs if c.state == "complete"]
            if options:
                best_w = min(options, key=score)
                if score(best_w) < score(base_run):
                    chosen[WARMUP] = best_w.params[WARMUP]

        # 4. the final run
        if not by_tag.get("final"):
            return [Suggestion({**self.base, **chosen}, 1.0, "final")]
        return None

