"""Execution: one Optuna trial = one real fine-tuning run, in the study directory.

The base model is loaded once per worker and reused: each trial attaches fresh adapters and
removes them afterwards, so the base weights are untouched (full fine-tuning restores them from a
copy). Out of memory is not a failure of the configuration: the trial is retried with half the
per-device batch and twice the accumulation, so the effective batch and the learning rate stay what
the sampler chose.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from pathlib import Path

import optuna
from transformers import TrainerCallback

from ..base_model import SharedBase, gpu_count
from ..config import Config
from ..errors import (
    BadInputError,
    ConfigError,
    DiskFullError,
    Preempted,
    TrainingError,
    TunelmError,
)
from ..runner import preempt, run_trial
from ..runner.tracking import check_installed, mark_pruned, trial_run
from ..tasks.metrics import availability_problems
from .budget import COST_ATTR
from .curve_pruner import recorded_reason
from .goal import LOSS, direction_of, value_of
from .interrupt import is_disk_full, mark
from .preemption import PREEMPTED_ATTR, requeue, trial_dir
from .pruners import asks_pruner
from .space import Dimension, apply, suggest

log = logging.getLogger("tunelm.search")


class OptunaReporter(TrainerCallback):
    """Reports every eval loss to the trial at its step; stops training when the pruner says so
    (it is not asked at the run's last step: `pruners.asks_pruner`). The eval loss whatever the
    objective: it is the only value measured at eval steps (a task metric is scored once, after
    training: `goal.py`)."""

    def __init__(self, trial: optuna.Trial):
        self.trial = trial
        self.pruned_at: int | None = None

    def on_evaluate(self, args, state, control, metrics=None, **kw):
        loss = (metrics or {}).get("eval_loss")
        if loss is None:
            return
        self.trial.report(float(loss) if math.isfinite(loss) else float("inf"), state.global_step)
        if asks_pruner(state.global_step, state.max_steps) and self.trial.should_prune():
            self.pruned_at = state.global_step
            control.should_training_stop = True


def is_oom(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


class TrialObjective:
    """The Optuna objective of a study on one worker: `__call__(trial)` runs the trial as a real
    fine-tuning run and returns its objective value."""

    def __init__(self, base: Config, dims: list[Dimension], study_dir: Path, objective: str,
                 extra_callbacks=(), progress: bool = False, isolate_in: str | None = None):
        """`isolate_in`: the storage URL; when given, each trial runs in a child process that
        reopens the trial there (`search.isolate`)."""
        self.base = base
        self.isolate_in = isolate_in
        self.dims = dims
        self.study_dir = Path(study_dir)
        self.objective = objective
        self.direction = direction_of(base.search)
        self.extra_callbacks = list(extra_callbacks)
        self.progress = progress
        self._base = SharedBase()
        # bad input (or a full disk) ends the study, not just a trial; a preemption ends this
        # worker's part
        self.fatal: TunelmError | None = None
        check_installed(base)  # a tracker of train.report_to that is missing: before trial 0
        missing = availability_problems(base.eval.metric, base.eval.metric_path)
        if missing:  # a worker joining without the metric's library or function
            raise ConfigError(missing)

    def _model(self, cfg: Config):
        """The base model and tokenizer, loaded on the first trial and kept."""
        return self._base.get(cfg.model)  # each trial hands it back unchanged (base_model)

    def params_for(self, trial: optuna.Trial) -> dict:
        params = suggest(trial, self.dims, trial.user_attrs.get("fixed"))
        trial.set_user_attr("params", params)
        return params

    def __call__(self, trial: optuna.Trial) -> float:
        """Runs the trial; one cut off by Ctrl-C or a full disk is marked so (`interrupt`)."""
        out = trial_dir(self.study_dir, trial)  # a retry resumes in its series' directory
        try:
            return self._trial(trial, out)
        except KeyboardInterrupt:
            mark(trial, out)
            raise
        except Exception as exc:
            if not is_disk_full(exc):
                raise
            mark(trial, out, f"the disk is full ({exc})")
            self.fatal = DiskFullError(
                f"trial {trial.number} could not write its files, the disk is full: {exc}. "
                f"Free space (or raise the file size limit) and rerun the same command: the "
                f"trial is marked interrupted in the study and runs again")
            trial.study.stop()
            raise

    def _trial(self, trial: optuna.Trial, out: Path) -> float:
        params = self.params_for(trial)
        fraction = float(trial.user_attrs.get("fraction", 1.0))
        try:
            cfg = apply(self.base, params)
        except ConfigError as exc:  # the space let through a value the config refuses
            trial.set_user_attr("error", f"invalid parameters: {exc}")
            raise
        # the base model's score is the same in every trial (tunelm evaluate --baseline gives
        # it once); a probe is judged by its eval loss, and generating for the task metric is
        # the slow part of its evaluation
        quiet = {"eval.baseline": False}
        if fraction < 1 and self.objective == LOSS:
            quiet["eval.metric"] = "none"
        cfg = apply(cfg, quiet)
        trial.set_user_attr("trial_dir", str(out))
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        run = trial_run(trial.study.study_name, trial.number, self.base.search.strategy, params,
                        stage=trial.user_attrs.get("tag"), trial_dir=out)
        started = time.time()
        reporter = OptunaReporter(trial)
        oom_retries = []
        while True:
            try:
                result, pruned_at = self._run(trial, cfg, out, fraction, reporter, run)
                break
            except Preempted as exc:  # SIGTERM: checkpoint saved; the trial goes back
                self._hand_back(trial, exc, started)
                raise
            except BadInputError as exc:  # the data or config, not this trial's parameters
                self.fatal = exc
                trial.study.stop()
                raise
            except TrainingError as exc:  # diverged or NaN: a bad configuration, pruned
                self._record(trial, exc.result or {}, started, oom_retries)
                trial.set_user_attr("prune_reason", exc.result.get("stop_reason") if exc.result
                                    else str(exc))
                raise optuna.TrialPruned(str(exc)) from None
            except Exception as exc:
                if preempt.requested():  # the child died of the notice some other way
                    self._hand_back(trial, Preempted(f"stopped by SIGTERM: {exc}"), started)
                    raise self.fatal from exc
                if not is_oom(exc) or cfg.train.batch_size == 1:
                    trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:2000])
                    raise
                self._free_memory()
                bs, acc = cfg.train.batch_size // 2, cfg.train.grad_accum * 2
                oom_retries.append({"batch_size": bs, "grad_accum": acc})
                log.warning("trial %d: out of memory at batch %d; retrying with batch %d x "
                            "accumulation %d (same effective batch)", trial.number,
                            cfg.train.batch_size, bs, acc)
                cfg = apply(cfg, {"train.batch_size": bs, "train.grad_accum": acc})
        self._record(trial, result, started, oom_retries)
        if pruned_at is not None:
            trial.set_user_attr("prune_reason", recorded_reason(trial) or (  # the curve pruner's
                f"pruned at step {pruned_at} by the pruner (eval loss behind the other trials "
                "at that step)"))
            mark_pruned(result, pruned_at)
            raise optuna.TrialPruned(f"pruned at step {pruned_at}")
        try:
            return self.value_of(result)
        except BadInputError as exc:  # the metric does not return the objective's score
            self.fatal = exc
            trial.study.stop()
            raise

    def _run(self, trial, cfg: Config, out: Path, fraction: float, reporter,
             run=None) -> tuple[dict, int]:
        """One attempt: (result, step the pruner stopped it at or None), in this process or
        in a child. Raises TrainingError when it diverged, the OOM error when out of memory.
        `run` names the trial's run for the trackers (`runner.tracking.trial_run`)."""
        if self.isolate_in is None:
            result = run_trial(cfg, out, loaded=self._model(cfg), progress=self.progress,
                               callbacks=[reporter, *self.extra_callbacks], fraction=fraction,
                               run=run)
            return result, reporter.pruned_at
        from .isolate import run_isolated

        outcome = run_isolated(cfg, out, fraction, self.isolate_in, trial.study.study_name,
                               trial._trial_id, run=run)
        status = outcome["status"]
        if status == "bad_input":
            raise BadInputError(outcome.get("error", "bad input"))
        if status == "preempted":
            raise Preempted(outcome.get("error", "preempted"), step=outcome.get("step"))
        if status == "diverged":
            raise TrainingError(outcome.get("error", "diverged"), result=outcome["result"])
        if status == "interrupted":
            raise KeyboardInterrupt
        if status == "oom":
            import torch

            raise torch.OutOfMemoryError(outcome.get("error", "out of memory"))
        if status != "ok":
            raise RuntimeError(f"trial {trial.number} failed in its child process: "
                               f"{outcome.get('error')}")
        return outcome["result"], outcome.get("pruned_at")

    def _hand_back(self, trial, exc: Preempted, started: float) -> None:
        """The trial goes back to the study (a queued copy resumes from its checkpoint), and
        this worker stops: the machine is going away."""
        requeue(trial.study, trial._trial_id)
        trial.set_user_attr(PREEMPTED_ATTR, exc.step)
        devices = self.base.train.devices if gpu_count() else 1
        trial.set_user_attr(COST_ATTR, round((time.time() - started) * devices, 2))
        self.fatal = exc
        trial.study.stop()

    def value_of(self, result: dict) -> float:
        return value_of(self.objective, self.direction, result)

    def _record(self, trial, result: dict, started: float, oom_retries: list) -> None:
        devices = self.base.train.devices if gpu_count() else 1  # the GPUs the trial held
        trial.set_user_attr(COST_ATTR, round((time.time() - started) * devices, 2))
        for key in ("best_eval_loss", "best_step", "final_eval_loss", "final_step",
                    "stop_reason", "tokens_per_s", "train_seconds"):
            if key in result:
                trial.set_user_attr(key, result[key])
        curve = _train_curve(trial.user_attrs.get("trial_dir"))
        if curve:
            trial.set_user_attr("train_curve", curve)
        final = result.get("final_score") or {}
        if final.get("eval_loss") is not None:
            trial.set_user_attr("final_score_eval_loss", final["eval_loss"])
        task = result.get("task_metrics") or {}
        if "exact_match" in task:
            trial.set_user_attr("exact_match", task["exact_match"])
        scores = {k: v for k, v in task.items() if k != "n" and (
            v is None or isinstance(v, (int, float)) and not isinstance(v, bool))}
        if scores:  # the report shows the objective's score beside the eval loss
            trial.set_user_attr("task_scores", scores)
        if oom_retries:
            trial.set_user_attr("oom_retries", oom_retries)

    def _free_memory(self) -> None:
        import gc

        import torch

        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _train_curve(trial_dir: str | None, points: int = 200) -> list:
    """(step, train loss) pairs of a trial, at most `points` of them, for the strategies."""
    import json

    if not trial_dir or not (Path(trial_dir) / "metrics.jsonl").exists():
        return []
    rows = [json.loads(x) for x in (Path(trial_dir) / "metrics.jsonl").read_text().splitlines()]
    pairs = [[r["step"], r["train_loss"]] for r in rows if r.get("train_loss") is not None]
    stride = max(1, len(pairs) // points)
    return pairs[::stride]


