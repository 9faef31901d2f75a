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
    """One logged training step: the loss averaged since the previous log, and the epoch
    (fractional, as Trainer logs it: 1.5 is half-way through the second pass) when known."""

    step: int
    loss: float
    lr: float | None = None
    grad_norm: float | None = None
    epoch: float | None = None


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

    def steps_per_log(self) -> int:
        """The usual number of optimizer steps between two train logs (1 when every step is)."""
        rows = self.finite_train()
        gaps = sorted(b.step - a.step for a, b in zip(rows, rows[1:]))
        return max(1, gaps[len(gaps) // 2]) if gaps else 1

    @property
    def steps_per_epoch(self) -> float | None:
        """Optimizer steps per pass over the training data: from the logged epochs, else from the
        planned steps and epochs of a run that set epochs (not max_steps); None when unknown."""
        known = [r for r in self.train if r.epoch]
        if len(known) >= 2 and known[-1].epoch > known[0].epoch:
            a, b = known[0], known[-1]
            return (b.step - a.step) / (b.epoch - a.epoch)
        if known:
            return known[-1].step / known[-1].epoch
        epochs = self.hparams.get("epochs")
        if epochs and not self.hparams.get("max_steps") and self.total_steps:
            return self.total_steps / float(epochs)
        return None

    def epoch_of(self, step: int, per_epoch: float | None = None) -> int:
        """The pass over the data (0, 1, ...) that optimizer step `step` belongs to
        (`per_epoch`: steps_per_epoch, when the caller has it at hand)."""
        per = per_epoch or self.steps_per_epoch
        return 0 if not per else max(0, math.ceil(step / per - 1e-6) - 1)

    def segments(self) -> list[list[TrainRow]]:
        """The finite train rows split at epoch boundaries (one list when the run never came
        round to its data again): within a segment no example has been seen twice more than the
        others, so the loss has no reason to drop by a step."""
        out: list[list[TrainRow]] = []
        last, per = None, self.steps_per_epoch  # once: it reads every row
        for r in self.finite_train():
            e = self.epoch_of(r.step, per)
            if e != last:
                out.append([])
                last = e
            out[-1].append(r)
        return out

    def series(self, min_steps: int = 10) -> list[tuple[int, float]]:
        """The finite train loss as `(step, loss)` points that each average at least `min_steps`
        optimizer steps: consecutive rows are merged when the run logged more often than that.
        A point never spans an epoch boundary (see `segments`).

        A single step's loss varies with its batch; averaged over 10 steps (as Trainer's
        `logging_steps=10` does) what is left is the curve and its instability.
        """
        return [p for seg in self.series_by_epoch(min_steps) for p in seg]

    def series_by_epoch(self, min_steps: int = 10) -> list[list[tuple[int, float]]]:
        """`series`, one list of points per epoch segment."""
        k = max(1, math.ceil(min_steps / self.steps_per_log()))
        out = []
        for rows in self.segments():
            chunks = [rows[i:i + k] for i in range(0, len(rows), k)]
            if len(chunks) > 1 and len(chunks[-1]) < k:  # a short last chunk joins the one before
                chunks[-2:] = [chunks[-2] + chunks[-1]]
            out.append([(c[-1].step, mean(r.loss for r in c)) for c in chunks])
        return out

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
    def effective_batch(self) -> int | None:
        """Examples per optimizer step (per-device batch x accumulation), when known."""
        batch = self.hparams.get("batch_size")
        return int(batch) * int(self.hparams.get("grad_accum") or 1) if batch else None

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
            "steps_per_epoch": self.steps_per_epoch,
            "effective_batch": self.effective_batch,
            "peak_learning_rate": self.peak_lr,
            "first_train_loss": tr[0].loss if tr else None,
            "last_train_loss": tr[-1].loss if tr else None,
            "best_eval_loss": best.eval_loss if best else None,
            "best_eval_step": best.step if best else None,
            "last_eval_loss": ev[-1].eval_loss if ev else None,
            "last_eval_step": ev[-1].step if ev else None,
        }
