"""One trial, top to bottom: load the model, attach adapters, build the data, train, keep the
best checkpoint, score the task, and leave a directory that explains itself:

    config.yaml      the fully resolved config
    metrics.jsonl    one JSON object per logged step (train) and per evaluation (eval)
    result.json      best/final eval loss (on the eval_examples.pruning subset), the best
                     checkpoint's final_score on the whole eval set (the objective),
                     task metrics, stop reason, cost, throughput, memory
    predictions.jsonl  per-example generations of the best checkpoint
    train.log        the grep-able step lines
    best/            the best adapter (or weights), reloadable with PEFT / Transformers
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from .. import hf_args
from ..base_model import (
    adapted,
    count_parameters,
    device_type,
    load_base_model,
    resolve_precision,
)
from ..config import Config
from ..data import Collator, ListDataset, prepare
from ..errors import BadInputError, ConfigError, TrainingError
from ..files import write_text_atomic
from ..logs import trial_log
from ..plan import plan_steps
from .callbacks import BestKeeper, HealthGuard, MetricsWriter, Progress
from .devices import check_devices, visible
from .final_score import brief, intermediate_eval_set, score_best, was_pruned
from .launch import ddp_fields, in_ranks, run_on_ranks
from .preflight import check_inputs, write_crash
from .task_eval import evaluate_task
from .tracking import RunInfo, plain_run, tracking, trainer_fields

log = logging.getLogger("tunelm.train")


def write_json(path: Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def _save_model(model, tokenizer, target: Path) -> None:
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def _peak_memory_mb(device: str) -> dict:
    import resource

    import torch

    out = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if device == "cuda":
        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def _check_optimizer(optimizer: str, device: str) -> None:
    if optimizer != "adamw_torch" and device != "cuda":
        raise ConfigError(
            f"train.optimizer {optimizer} needs bitsandbytes on a CUDA GPU; on this machine use "
            "--set train.optimizer=adamw_torch"
        )


def training_kwargs(cfg: Config, plan, out: Path, precision: str, device: str,
                    run: RunInfo | None = None) -> dict:
    """The `TrainingArguments` keyword arguments of a trial: the config's (`hf_args`, the one
    mapping `tunelm export` shares) and this run's own on top. `run` names the run for the
    trackers of `train.report_to`."""
    kw = hf_args.training_kwargs(cfg, plan, precision)
    kw.update(
        output_dir=str(out / "hf"),
        logging_nan_inf_filter=False,  # the health guard must see NaN losses
        save_strategy="no",  # BestKeeper keeps the best checkpoint, and only that one
        **trainer_fields(cfg, run),  # report_to, run_name: runner/tracking.py
        use_cpu=device == "cpu",
        include_num_input_tokens_seen="non_padding",  # the throughput count
        remove_unused_columns=False,  # our collator reads input_ids and labels
        label_names=["labels"],
        dataloader_pin_memory=device == "cuda",
        disable_tqdm=False,
        **ddp_fields(device),  # on N ranks: the backend and the collective timeout
    )
    return kw


def training_arguments(cfg: Config, plan, out: Path, precision: str, device: str,
                       run: RunInfo | None = None):
    from transformers import TrainingArguments

    return TrainingArguments(**training_kwargs(cfg, plan, out, precision, device, run))


def run_trial(cfg: Config, out_dir: str | Path, *, loaded=None, callbacks=(), progress=True,
              fraction: float = 1.0, resume_from: str | Path | None = None,
              save_state_to: str | Path | None = None,
              run: RunInfo | None = None) -> dict:
    """Run one fine-tuning trial of `cfg` into `out_dir`; returns the result dict.

    `loaded` is an optional `(base_model, tokenizer)` pair to reuse (a search worker loads the
    base model once). `fraction` < 1 runs that share of the planned steps (a probe).
    `resume_from` continues the training state another run saved (weights, optimizer, scheduler,
    step counter) with this config's learning rate and weight decay, up to this config's steps;
    `save_state_to` saves that state at the end of training (population-based training). Raises
    TrainingError (with `.result`) when the run diverged or crashed; the trial directory is
    complete either way. `run` names the run for the trackers of `train.report_to` (a search
    trial's `tracking.trial_run`); by default it is named after `out_dir`.
    """
    out = Path(out_dir)
    check_inputs(cfg, out, loaded)  # bad input is found before the trial directory exists
    check_devices(cfg.train.devices, visible())  # more ranks than devices: exit 2
    if cfg.train.devices > 1 and not in_ranks():  # N ranks under torchrun: runner/launch.py
        return run_on_ranks(cfg, out, fraction=fraction, run=run, callbacks=callbacks,
                            resume_from=resume_from, save_state_to=save_state_to)
    created = not out.exists()
    try:
        return _run(cfg, out, loaded, callbacks, progress, fraction, resume_from, save_state_to, run=run)
    except BadInputError:
        if created:  # bad input leaves nothing half-written behind
            shutil.rmtree(out, ignore_errors=True)
        raise
    except Exception as exc:  # a crash mid-run (a full disk, say): the directory says so
        write_crash(out, exc)
        raise


def _run(cfg: Config, out: Path, loaded, callbacks, progress, fraction, resume_from=None,
         save_state_to=None, *, run=None) -> dict:
    from transformers import set_seed

    started = time.time()
    device, precision = _start(cfg, out)
    run = run or plain_run(out)
    with trial_log(out / "train.log"), ExitStack() as stack:
        log.info("trial %s | model %s | method %s | device %s | precision %s",
                 out, cfg.model.name, cfg.model.method, device, precision)
        set_seed(cfg.train.seed)
        if loaded is None:
            base, tokenizer = load_base_model(cfg.model, precision, device)[:2]
        else:
            base, tokenizer = loaded
        data = prepare(tokenizer, cfg.data, out)
        log.info("data | train %d sequences | eval %d | truncated %d",
                 len(data.train), len(data.eval), data.stats["train"]["truncated"])

        baseline = {}
        if cfg.eval.baseline:
            baseline, _ = evaluate_task(base, tokenizer, data.eval_records, cfg.data, cfg.eval,
                                        device, precision)
            log.info("baseline task metrics: %s", brief(baseline))

        set_seed(cfg.train.seed)  # adapters start the same whatever ran before
        # a base lent by a worker goes back unchanged when the trial ends, however it ends
        model = stack.enter_context(adapted(base, cfg, cfg.train.gradient_checkpointing,
                                            hand_back=loaded is not None))
        trainable, total = count_parameters(model)
        plan = plan_steps(cfg.train, len(data.train), fraction=fraction)
        log.info("plan | %d steps | warmup %d | eval every %d | effective batch %d | "
                 "trainable %d of %d parameters", plan.total_steps, plan.warmup_steps,
                 plan.eval_steps, plan.effective_batch, trainable, total)
        # the trackers hear of the run from here to the end of the final evaluation
        tracker = stack.enter_context(tracking(cfg, out, run))
        trained = _train(cfg, out, model, tokenizer, data, plan, precision, device, run,
                         callbacks, progress, resume_from, save_state_to)
        final, task, pruned = None, {}, was_pruned(callbacks)  # (every rank asks)
        if trained.ok and not pruned:  # nothing reads a pruned trial's score
            final, task = score_best(cfg, out, trained, model, tokenizer, data, device,
                                     precision, whole=fraction >= 1)
        wall = time.time() - started
        result = {
            "status": "ok" if trained.ok else "failed",
            "stop_reason": trained.stop_reason,
            "best_eval_loss": _clean(trained.keeper.best_loss),
            "best_step": trained.keeper.best_step,
            "final_eval_loss": _clean(trained.keeper.last_loss),
            "final_step": trained.step,
            "eval_examples": {"pruning": trained.eval_examples, "final": len(data.eval)},
            "final_score": final,
            "task_metrics": task,
            "baseline_task_metrics": baseline,
            **_throughput(trained.metrics, wall),
            **_peak_memory_mb(device),
            "device": device,
            "precision": precision,
            "trainable_parameters": trainable,
            "total_parameters": total,
            "plan": plan.as_dict(),
            "data": data.stats,
            "best_checkpoint": "best" if (out / "best").exists() else None,
        }
        if tracker is not None:
            tracker.finish(result)  # its summary, and result["tracking"]: where the run is
        write_json(out / "result.json", result)
        shutil.rmtree(out / "hf", ignore_errors=True)
        log.info("result | best eval loss %s @ step %s | stop %s | %.0f s",
                 result["best_eval_loss"], result["best_step"], trained.stop_reason, wall)
    if trained.error is not None:
        raise trained.error
    if trained.guard.reason:
        raise TrainingError(
            f"the run stopped at step {trained.guard.step}: {trained.guard.reason}. The learning "
            f"rate ({cfg.train.learning_rate:g}) is the usual cause: try it 3-10x lower. "
            f"See {out / 'metrics.jsonl'}",
            result=result,
        )
    return result


def _start(cfg: Config, out: Path) -> tuple[str, str]:
    """The trial directory without a previous run's results, with this config; returns
    (device, precision), checked against the config."""
    import torch

    out.mkdir(parents=True, exist_ok=True)
    for stale in ("metrics.jsonl", "result.json", "predictions.jsonl"):
        (out / stale).unlink(missing_ok=True)
    (out / "config.yaml").write_text(cfg.to_yaml(comments=True), encoding="utf-8")
    device = device_type()
    precision = resolve_precision(cfg.model.precision, device)
    _check_optimizer(cfg.train.optimizer, device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    return device, precision


@dataclass
class _Trained:
    """How training went: its callbacks' records, the last step and why it stopped."""

    metrics: MetricsWriter
    guard: HealthGuard
    keeper: BestKeeper
    step: int
    stop_reason: str
    error: BaseException | None
    trainer: object = None
    eval_examples: int = 0  # the intermediate evaluations' examples

    @property
    def ok(self) -> bool:
        return self.error is None and not self.guard.reason


def _train(cfg: Config, out: Path, model, tokenizer, data, plan, precision, device, run,
           callbacks, progress, resume_from, save_state_to) -> _Trained:
    """Train `model` with the Trainer and our callbacks; the best checkpoint goes to out/best."""
    from transformers import Trainer
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    metrics = MetricsWriter(out / "metrics.jsonl")
    guard = HealthGuard(factor=cfg.train.divergence_factor)
    best_dir = out / "best"
    shutil.rmtree(best_dir, ignore_errors=True)
    keeper = BestKeeper(
        best_dir if cfg.train.save_best else None,
        cfg.train.early_stopping_patience,
        cfg.train.early_stopping_threshold,
        save_fn=lambda d: _save_model(model, tokenizer, d),
    )
    # what pruning and early stopping read: a seeded subset of the eval set (final_score.py)
    eval_rows, eval_examples = intermediate_eval_set(cfg, data.eval)
    trainer = Trainer(
        model=model,
        args=training_arguments(cfg, plan, out, precision, device, run),
        train_dataset=ListDataset(data.train),
        eval_dataset=ListDataset(eval_rows),
        data_collator=Collator(tokenizer.pad_token_id),
        # packed batches carry no attention mask: the Trainer counts tokens through the tokenizer
        processing_class=tokenizer,
        callbacks=[metrics, guard, keeper, *callbacks],
    )
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if progress:
        trainer.add_callback(Progress())
    if resume_from is not None:  # before every other callback looks at the optimizer
        from .resume import NewHyperparameters

        trainer.callback_handler.callbacks.insert(0, NewHyperparameters())
        log.info("resuming the training state of %s", resume_from)

    stop_reason = "completed"
    error = None
    try:
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    except KeyboardInterrupt:
        stop_reason = "interrupted"
        error = KeyboardInterrupt()
    step = trainer.state.global_step
    if guard.reason:
        stop_reason = guard.reason
    elif keeper.stopped_early:
        stop_reason = "early_stopping"
    if error is None and not guard.reason and keeper.last_step != step:
        trainer.evaluate()  # the final eval loss belongs to the final step
    metrics.close()
    if save_state_to is not None and error is None and not guard.reason:
        from .resume import save_training_state

        save_training_state(trainer, model, Path(save_state_to))  # the last weights
    return _Trained(metrics, guard, keeper, step, stop_reason, error, trainer, eval_examples)


def _throughput(metrics: MetricsWriter, wall: float) -> dict:
    seconds = metrics.train_seconds
    return {
        "train_seconds": round(seconds, 2),
        "wall_seconds": round(wall, 2),
        "tokens_seen": metrics.tokens_seen,
        "tokens_per_s": round(metrics.tokens_seen / seconds, 1) if seconds else None,
    }


def _clean(x):
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x


__all__ = ["run_trial", "training_arguments", "training_kwargs"]
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
