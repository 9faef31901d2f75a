"""Trainer callbacks: metric logging, the health guard, best-checkpoint keeping with early
stopping, and a progress bar. Each is small and independent; the runner plugs them in.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback

log = logging.getLogger("tunelm.train")


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


class Resumable:
    """A callback whose running state (the attributes in `KEPT`) goes into a checkpoint and
    comes back with it (`runner/checkpoint.py`), so a resumed run decides as the whole run would."""

    KEPT: tuple[str, ...] = ()

    def kept_state(self) -> dict:
        return {k: getattr(self, k) for k in self.KEPT}

    def restore(self, state: dict) -> None:
        for k in self.KEPT:
            if k in state:
                setattr(self, k, state[k])


class MetricsWriter(Resumable, TrainerCallback):
    """Appends one JSON object per logged step to `metrics.jsonl` and one grep-able log line.

    Tokens per second count training time only: the clock restarts after every evaluation.
    """

    KEPT = ("train_seconds", "tokens_seen")

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")
        self._clock = None
        self._tokens_at_clock = 0
        self.train_seconds = 0.0
        self.tokens_seen = 0

    def _write(self, row: dict) -> None:
        self._fh.write(json.dumps(row) + "\n")
        self._fh.flush()

    def on_train_begin(self, args, state, control, **kw):
        self._clock = time.perf_counter()
        self._tokens_at_clock = state.num_input_tokens_seen

    def on_log(self, args, state, control, logs=None, **kw):
        logs = logs or {}
        if "loss" in logs:
            now = time.perf_counter()
            tokens = int(logs.get("num_input_tokens_seen", state.num_input_tokens_seen))
            dt = now - (self._clock or now)
            self.train_seconds += dt
            speed = (tokens - self._tokens_at_clock) / dt if dt > 0 else None
            self._clock, self._tokens_at_clock, self.tokens_seen = now, tokens, tokens
            row = {
                "step": state.global_step,
                "epoch": round(state.epoch or 0.0, 4),
                "train_loss": logs.get("loss"),
                "learning_rate": logs.get("learning_rate"),
                "grad_norm": logs.get("grad_norm"),
                "tokens_seen": tokens,
                "tokens_per_s": round(speed, 1) if speed else None,
            }
            self._write(row)
            log.info(
                "step %d | loss %.4f | lr %.2e | grad_norm %.3g | tok/s %.0f",
                row["step"], _nan(row["train_loss"]), _nan(row["learning_rate"]),
                _nan(row["grad_norm"]), _nan(row["tokens_per_s"]),
            )
        if "eval_loss" in logs:
            self._write({"step": state.global_step, "epoch": round(state.epoch or 0.0, 4),
                         "eval_loss": logs["eval_loss"]})

    def on_evaluate(self, args, state, control, **kw):
        self._clock = time.perf_counter()  # evaluation time is not training time

    def close(self):
        self._fh.close()


def _nan(x):
    return float("nan") if x is None else float(x)


class HealthGuard(Resumable, TrainerCallback):
    """Stops a run whose loss is NaN/inf or rises far above its running minimum.

    The loss is smoothed with an exponential moving average; the run has diverged when the
    smoothed loss exceeds both `factor` times its minimum and the minimum plus `margin` nats (the
    margin keeps a near-zero minimum from turning noise into a verdict).
    """

    KEPT = ("ema", "min_ema")

    def __init__(self, factor: float = 3.0, margin: float = 1.0, smoothing: float = 0.3,
                 min_steps: int = 3):
        self.factor, self.margin, self.smoothing, self.min_steps = factor, margin, smoothing, min_steps
        self.ema = None
        self.min_ema = math.inf
        self.reason: str | None = None
        self.step: int | None = None

    def _stop(self, control, state, reason):
        self.reason, self.step = reason, state.global_step
        log.warning("health guard: %s at step %d; stopping the run", reason, state.global_step)
        control.should_training_stop = True

    def on_log(self, args, state, control, logs=None, **kw):
        logs = logs or {}
        for key in ("loss", "grad_norm", "eval_loss"):
            if key in logs and logs[key] is not None and not _finite(logs[key]):
                self._stop(control, state, f"{key} is {logs[key]}")
                return
        loss = logs.get("loss")
        if loss is None or not self.factor:
            return
        self.ema = loss if self.ema is None else self.smoothing * loss + (1 - self.smoothing) * self.ema
        self.min_ema = min(self.min_ema, self.ema)
        if state.global_step >= self.min_steps:
            limit = max(self.factor * self.min_ema, self.min_ema + self.margin)
            if self.ema > limit:
                self._stop(
                    control, state,
                    f"diverged: smoothed loss {self.ema:.3f} > {limit:.3f} "
                    f"({self.factor:g}x its minimum {self.min_ema:.3f})",
                )


class BestKeeper(Resumable, TrainerCallback):
    """Keeps the best checkpoint by eval loss (only the best: disk stays bounded) and stops early
    after `patience` evaluations without an improvement larger than `threshold`."""

    KEPT = ("best_loss", "best_step", "last_loss", "last_step", "bad_evals", "_ref", "evals")

    def __init__(self, save_dir: Path | None, patience: int | None, threshold: float, save_fn=None):
        self.save_dir = Path(save_dir) if save_dir else None
        self.patience, self.threshold = patience, threshold
        self.save_fn = save_fn
        self.best_loss = math.inf
        self.best_step: int | None = None
        self.last_loss: float | None = None
        self.last_step: int | None = None
        self.bad_evals = 0
        self._ref = math.inf  # the loss that further improvements are measured against
        self.stopped_early = False
        self.evals = 0

    def on_evaluate(self, args, state, control, metrics=None, **kw):
        loss = (metrics or {}).get("eval_loss")
        if loss is None:
            return
        self.evals += 1
        self.last_loss, self.last_step = loss, state.global_step
        if not _finite(loss):
            return
        if loss < self.best_loss:
            self.best_loss, self.best_step = loss, state.global_step
            if self.save_dir is not None and self.save_fn is not None:
                self.save_fn(self.save_dir)
        if loss < self._ref - self.threshold:
            self._ref, self.bad_evals = loss, 0
        else:
            self.bad_evals += 1
        best = f"best {self.best_loss:.4f} @ {self.best_step}"
        log.info("eval step %d | eval_loss %.4f | %s", state.global_step, loss, best)
        if self.patience and self.bad_evals >= self.patience:
            self.stopped_early = True
            log.info("early stopping: %d evaluations without improvement > %g",
                     self.bad_evals, self.threshold)
            control.should_training_stop = True


class Progress(ProgressCallback):
    """Trainer's progress bar, showing loss and learning rate instead of printing every log."""

    def on_log(self, args, state, control, logs=None, **kw):
        if not state.is_world_process_zero or self.training_bar is None or not logs:
            return
        shown = {}
        if "loss" in logs:
            shown["loss"] = f"{logs['loss']:.4f}" if _finite(logs["loss"]) else str(logs["loss"])
        if "learning_rate" in logs:
            shown["lr"] = f"{logs['learning_rate']:.2e}"
        if "eval_loss" in logs:
            self._eval = f"{logs['eval_loss']:.4f}"
        if getattr(self, "_eval", None):
            shown["eval"] = self._eval
        self.training_bar.set_postfix(shown, refresh=False)

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kw):
        pass  # evaluations are short; the eval loss shows in the bar's postfix
