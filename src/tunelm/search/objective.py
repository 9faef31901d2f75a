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
from ..errors import BadInputError, ConfigError, TrainingError
from ..runner import run_trial
from ..runner.tracking import check_installed, mark_pruned, trial_run
from .budget import COST_ATTR
from .curve_pruner import recorded_reason
from .space import Dimension, apply, suggest

log = logging.getLogger("tunelm.search")


class OptunaReporter(TrainerCallback):
    """Reports every eval loss to the trial at its step; stops training when the pruner says so."""

    def __init__(self, trial: optuna.Trial):
        self.trial = trial
        self.pruned_at: int | None = None

    def on_evaluate(self, args, state, control, metrics=None, **kw):
        loss = (metrics or {}).get("eval_loss")
        if loss is None:
            return
        self.trial.report(float(loss) if math.isfinite(loss) else float("inf"), state.global_step)
        if self.trial.should_prune():
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
        self.extra_callbacks = list(extra_callbacks)
        self.progress = progress
        self._base = SharedBase()
        self.fatal: BadInputError | None = None  # bad input ends the study, not just a trial
        check_installed(base)  # a tracker of train.report_to that is missing: before trial 0

    def _model(self, cfg: Config):
        """The base model and tokenizer, loaded on the first trial and kept."""
        return self._base.get(cfg.model)  # each trial hands it back unchanged (base_model)

    def params_for(self, trial: optuna.Trial) -> dict:
        params = suggest(trial, self.dims, trial.user_attrs.get("fixed"))
        trial.set_user_attr("params", params)
        return params

    def __call__(self, trial: optuna.Trial) -> float:
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
        if fraction < 1 and self.objective != "exact_match":
            quiet["eval.metric"] = "none"
        cfg = apply(cfg, quiet)
        out = self.study_dir / "trials" / f"{trial.number:04d}"
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
        return self.value_of(result)

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
        if status == "diverged":
            raise TrainingError(outcome.get("error", "diverged"), result=outcome["result"])
        if status == "oom":
            import torch

            raise torch.OutOfMemoryError(outcome.get("error", "out of memory"))
        if status != "ok":
            raise RuntimeError(f"trial {trial.number} failed in its child process: "
                               f"{outcome.get('error')}")
        return outcome["result"], outcome.get("pruned_at")

    def value_of(self, result: dict) -> float:
        if self.objective == "exact_match":
            return float((result.get("task_metrics") or {}).get("exact_match") or 0.0)
        # the best checkpoint's loss on the whole eval set; the run's best on the pruning
        # subset where it has none (an older result.json)
        loss = (result.get("final_score") or {}).get("eval_loss", result.get("best_eval_loss"))
        return float(loss) if loss is not None else float("inf")

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


