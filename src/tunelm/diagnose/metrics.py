"""The metrics table every check reads: the train rows and eval rows of one run.

A table comes from a tunelm trial's `metrics.jsonl`, from a Hugging Face `trainer_state.json`
(see `load.py`), or is built in memory with `MetricsTable.from_rows` for tests and other tools.
Values may be NaN or inf: that is evidence (a diverged run), so the table keeps them and the
checks ask for `finite_train()` / `finite_eval()` where they need numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .stats import mean

KINDS = ("tunelm", "trainer", "memory")


@dataclass(frozen=True)
class TrainRow:
    """One logged training step: the loss averaged since the previous log."""

    step: int
    loss: float
    lr: float | None = None
    grad_norm: float | None = None


@dataclass(frozen=True)
class EvalRow:
    """One evaluation: the eval loss at a step."""

    step: int
    eval_loss: float


def _finite(x) -> bool:
    return x is not None and math.isfinite(x)


@dataclass
class MetricsTable:
    """Train and eval rows of one run, sorted by step, and what is known about how it was run.

    `kind` says where the table came from and which vocabulary recommendations use ("tunelm":
    config fields such as train.learning_rate; "trainer" and "memory": TrainingArguments names).
    `total_steps` is the planned number of steps when known (the run may have stopped earlier).
    `hparams` holds the known settings: learning_rate, warmup_ratio, epochs, max_steps,
    early_stopping_patience, max_grad_norm, weight_decay, dropout.
    """

    train: list[TrainRow]
    eval: list[EvalRow]
    source: str = "<memory>"
    kind: str = "memory"
    total_steps: int | None = None
    hparams: dict = field(default_factory=dict)

    def __post_init__(self):
        self.train = sorted(self.train, key=lambda r: r.step)
        self.eval = sorted(self.eval, key=lambda r: r.step)

    @classmethod
    def from_rows(cls, train=(), eval=(), **kw) -> MetricsTable:
        """A table from `(step, loss)` / `(step, loss, lr, grad_norm)` tuples and `(step,
        eval_loss)` tuples. `MetricsTable.from_rows([(10, 2.1), (20, 1.8)], [(20, 1.9)])`"""
        return cls([TrainRow(*r) for r in train], [EvalRow(*r) for r in eval], **kw)

    # -- views -----------------------------------------------------------------------------------

    def finite_train(self) -> list[TrainRow]:
        return [r for r in self.train if _finite(r.loss)]

    def finite_eval(self) -> list[EvalRow]:
        return [r for r in self.eval if _finite(r.eval_loss)]

    @property
    def last_step(self) -> int:
        """The last step anything was logged at."""
        return max([r.step for r in self.train] + [r.step for r in self.eval] + [0])

    @property
    def steps(self) -> int:
        """The run's length in steps: the planned total when known, else the last logged step."""
        return max(self.total_steps or 0, self.last_step)

    def series(self, min_steps: int = 10) -> list[tuple[int, float]]:
        """The finite train loss as `(step, loss)` points that each average at least `min_steps`
        optimizer steps: consecutive rows are merged when the run logged more often than that.

        A single step's loss varies with its batch; averaged over 10 steps (as Trainer's
        `logging_steps=10` does) what is left is the curve and its instability.
        """
        rows = self.finite_train()
        if len(rows) < 2:
            return [(r.step, r.loss) for r in rows]
        gaps = sorted(b.step - a.step for a, b in zip(rows, rows[1:]))
        per_row = max(1, gaps[len(gaps) // 2])
        k = max(1, math.ceil(min_steps / per_row))
        chunks = [rows[i:i + k] for i in range(0, len(rows), k)]
        if len(chunks) > 1 and len(chunks[-1]) < k:  # a short last chunk joins the one before
            chunks[-2:] = [chunks[-2] + chunks[-1]]
        return [(c[-1].step, mean(r.loss for r in c)) for c in chunks]

    def train_loss_between(self, after: int, upto: int) -> float | None:
        """Mean finite train loss logged in steps (after, upto]; the last row before when none."""
        rows = [r.loss for r in self.finite_train() if after < r.step <= upto]
        if rows:
            return mean(rows)
        before = [r.loss for r in self.finite_train() if r.step <= upto]
        return before[-1] if before else None

    # -- what the run was set up with -------------------------------------------------------------

    @property
    def peak_lr(self) -> float | None:
        """The configured learning rate, else the highest one logged."""
        if self.hparams.get("learning_rate"):
            return float(self.hparams["learning_rate"])
        lrs = [r.lr for r in self.train if _finite(r.lr)]
        return max(lrs) if lrs else None

    @property
    def warmup_ratio(self) -> float | None:
        """The configured warmup ratio, else the share of steps before the logged rate peaked
        (None when no rate was logged)."""
        if self.hparams.get("warmup_ratio") is not None:
            return float(self.hparams["warmup_ratio"])
        rows = [r for r in self.train if _finite(r.lr)]
        if not rows:
            return None
        top = max(r.lr for r in rows)
        peak = next(r for r in rows if r.lr >= top * 0.999)
        return 0.0 if peak is rows[0] else round(peak.step / max(self.steps, 1), 3)

    def summary(self) -> dict:
        """Plain facts about the run, for the report header."""
        ev = self.finite_eval()
        tr = self.finite_train()
        best = min(ev, key=lambda r: r.eval_loss) if ev else None
        return {
            "path": self.source,
            "kind": self.kind,
            "steps": self.last_step,
            "planned_steps": self.total_steps,
            "train_points": len(self.train),
            "eval_points": len(self.eval),
            "peak_learning_rate": self.peak_lr,
            "first_train_loss": tr[0].loss if tr else None,
            "last_train_loss": tr[-1].loss if tr else None,
            "best_eval_loss": best.eval_loss if best else None,
            "best_eval_step": best.step if best else None,
            "last_eval_loss": ev[-1].eval_loss if ev else None,
            "last_eval_step": ev[-1].step if ev else None,
        }
