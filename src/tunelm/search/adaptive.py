"""The budget-aware default: the recommended config first, then the best config's untried
neighbours, most promising first, as long as the budget pays a full run.

A study of 5 to 20 full runs cannot afford start-up trials drawn at random. This strategy spends
them where the improvement is expected:

1. the recommended config, in full;
2. the untried neighbours of the best finished config (the incumbent), in this order: the
   learning rate one step (x or / `lr_step`, half a decade) either side, continuing in the
   direction that last improved; then the next LoRA rank up and down among the space's choices
   (only once both rate neighbours of the incumbent ran: the rate is settled); then the warmup
   halved or doubled within its range. A neighbour that beats the incumbent becomes the
   incumbent and the walk goes on around it (coordinate descent); every trial is a full run,
   and the curve pruner (`search.curve_pruner`) stops a losing one after a few evaluations, so a
   rejected neighbour costs a fraction of a run;
3. when the incumbent has no untried neighbour left, the rest of the budget goes to the sampler
   (TPE, which sees every trial so far): a hand-over;
4. it stops when what is left of the budget cannot pay one full run (`runs_left` < 1).

A pure state machine: `decide(history, runs_left)` reads finished trials and returns one
`Decision` (a value: run these parameters, hand over, or stop, each with its reason), so it is
tested on synthetic outcomes in milliseconds. The caller records every decision in the study.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

LR = "train.learning_rate"
RANK = "lora.r"
WARMUP = "train.warmup_ratio"
RUN, HANDOVER, STOP = "run", "handover", "stop"


@dataclass(frozen=True)
class Outcome:
    """A finished trial as the strategy sees it: its parameters, its state (complete | pruned |
    failed) and its objective value (complete trials)."""

    params: dict
    state: str
    value: float | None = None
    tag: str = ""


@dataclass(frozen=True)
class Decision:
    kind: str  # run | handover | stop
    why: str
    params: dict | None = None
    tag: str = ""


def _round(x: float) -> float:
    return float(f"{x:.3g}")


@dataclass
class Adaptive:
    """`base`: the recommended values of the tuned dimensions ({LR, RANK?, WARMUP?}); the bounds
    and choices come from the search space."""

    base: dict
    lr_bounds: tuple[float, float]
    ranks: tuple = ()  # the space's rank choices; empty: the rank is not tuned
    warmup_bounds: tuple[float, float] | None = None  # None: the warmup is not tuned
    lr_step: float = 10 ** 0.5
    direction: str = "minimize"
    log: list[str] = field(default_factory=list)

    def __post_init__(self):
        if self.direction not in ("minimize", "maximize"):
            raise ValueError(f"direction must be minimize or maximize, got {self.direction!r}")
        if LR not in self.base:
            raise ValueError(f"base must hold {LR}, got {sorted(self.base)}")

    def decide(self, history: list[Outcome], runs_left: float | None = None) -> Decision:
        """The next decision given every finished trial and the budget left in full runs
        (None: unbounded). Appends it to `log`."""
        d = self._decide(history, runs_left)
        self.log.append(f"{d.kind}: {d.why}")
        return d

    def _decide(self, history: list[Outcome], runs_left: float | None) -> Decision:
        if runs_left is not None and runs_left < 1 - 1e-9:
            return Decision(STOP, f"the budget left ({max(0.0, runs_left):.2f} full runs) "
                                  "cannot pay one full run")
        if not history:
            return Decision(RUN, "the recommended config first", dict(self.base), "recommended")
        tried = {self._key(o.params) for o in history}
        inc = self.incumbent(history)
        center = inc.params if inc else dict(self.base)
        for params, tag, why in self._neighbours(center, history, tried, inc is None):
            if self._key(params) not in tried:
                return Decision(RUN, why, params, tag)
        if inc is None:
            return Decision(STOP, "neither the recommended config nor its rate neighbours finished")
        return Decision(HANDOVER, f"every neighbour of the best config ({_brief(inc.params)}) "
                                  "has run; the sampler spends the rest of the budget")

    def incumbent(self, history: list[Outcome]) -> Outcome | None:
        done = [o for o in history if o.state == "complete" and o.value is not None
                and math.isfinite(o.value)]
        if not done:
            return None
        sign = 1 if self.direction == "minimize" else -1
        return min(done, key=lambda o: sign * o.value)

    def _lr(self, k: int) -> float:
        """The k-th rate of the lattice base x lr_step^k (3 significant digits): every rate the
        strategy proposes is on it, so a walk down and back up meets the same values."""
        return _round(self.base[LR] * self.lr_step ** k)

    def _lr_index(self, lr: float) -> int | None:
        k = round(math.log(lr / self.base[LR]) / math.log(self.lr_step))
        return k if abs(lr / self._lr(k) - 1) < 0.01 else None

    def _key(self, params: dict) -> tuple:
        """A configuration's identity: the rate as its lattice index (off the lattice: its value
        to 3 digits), the other values as they are."""
        out = []
        for name, v in sorted(params.items()):
            if name == LR:
                k = self._lr_index(v)
                v = ("lattice", k) if k is not None else _round(v)
            out.append((name, _round(v) if isinstance(v, float) else v))
        return tuple(out)

    def _in_lr_bounds(self, lr: float) -> bool:
        lo, hi = self.lr_bounds
        return lo * 0.99 <= lr <= hi * 1.01

    def _neighbours(self, c: dict, history, tried, nothing_finished: bool):
        """(params, tag, why) around the incumbent `c`, most promising first."""
        lr = c[LR]
        k = self._lr_index(lr)
        up, down = ((self._lr(k + 1), self._lr(k - 1)) if k is not None
                    else (_round(lr * self.lr_step), _round(lr / self.lr_step)))
        lrs = [(v, side) for v, side in ((up, "higher"), (down, "lower"))
               if self._in_lr_bounds(v)]
        if nothing_finished or self._came_down(c, history):
            lrs.reverse()  # nothing finished (diverged?): lower first; else keep the direction
        for value, side in lrs:
            yield ({**c, LR: value}, "lr", f"learning rate {value:.3g}, {side} than the best "
                   f"config's {lr:.3g}")
        if nothing_finished:
            return
        lr_settled = all(self._key({**c, LR: v}) in tried for v, _ in lrs)
        if self.ranks and RANK in c and lr_settled:
            choices = sorted(self.ranks)
            above = [r for r in choices if r > c[RANK]]
            below = [r for r in choices if r < c[RANK]]
            for r in ([above[0]] if above else []) + ([below[-1]] if below else []):
                yield ({**c, RANK: r}, "rank", f"LoRA rank {r} at the settled learning rate "
                       f"{lr:.3g} (best config: rank {c[RANK]})")
        if self.warmup_bounds and WARMUP in c and lr_settled:
            lo_w, hi_w = self.warmup_bounds
            for w in (c[WARMUP] / 2, c[WARMUP] * 2):
                w = _round(w)
                if lo_w - 1e-9 <= w <= hi_w + 1e-9:
                    yield ({**c, WARMUP: w}, "warmup", f"warmup ratio {w:g} (best config: "
                           f"{c[WARMUP]:g})")

    def _came_down(self, c: dict, history) -> bool:
        """True when the incumbent was reached by lowering the rate from the config before it
        (the walk goes on downwards)."""
        rest = {k: v for k, v in c.items() if k != LR}
        prev = [o for o in history if o.state == "complete" and o.value is not None
                and self._key(o.params) != self._key(c)
                and {k: v for k, v in o.params.items() if k != LR} == rest]
        return bool(prev) and all(o.params[LR] > c[LR] for o in prev)


def runs_left(run_seconds: float | None, *, trials_left: int | None = None,
              device_seconds_left: float | None = None,
              wall_seconds_left: float | None = None) -> float | None:
    """What is left of a study's budget in full runs: the fewest of the trials left, and the
    device and wall seconds left over the cost of one full run (measured, or estimated before
    the first one). None: nothing bounds the study."""
    if run_seconds is not None and run_seconds <= 0:
        raise ValueError(f"run_seconds must be > 0, got {run_seconds}")
    bounds = [] if trials_left is None else [float(trials_left)]
    for left in (device_seconds_left, wall_seconds_left):
        if left is not None and run_seconds is not None:
            bounds.append(left / run_seconds)
    return min(bounds) if bounds else None


def _brief(params: dict) -> str:
    return ", ".join(f"{k.split('.')[-1]} {v:.3g}" if isinstance(v, float) else
                     f"{k.split('.')[-1]} {v}" for k, v in params.items())
