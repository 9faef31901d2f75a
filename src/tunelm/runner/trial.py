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
    resume/          while it runs: the checkpoint a preempted or killed run resumes from
                     (runner/checkpoint.py); gone once it finishes
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from pathlib import Path

from ..base_model import (
    adapted,
    count_parameters,
    device_type,
    load_base_model,
    resolve_precision,
)
from ..config import Config
from ..data import Collator, ListDataset, prepare
from ..errors import BadInputError, ConfigError, Preempted, TrainingError
from ..files import write_text_atomic
from ..logs import trial_log
from ..plan import plan_steps
from . import checkpoint, preempt
from .arguments import training_arguments, training_kwargs
from .callbacks import BestKeeper, HealthGuard, MetricsWriter, Progress
from .devices import check_devices, visible
from .final_score import intermediate_eval_set, score_best, was_pruned
from .launch import in_ranks, rank, run_on_ranks
from .preflight import check_inputs, write_crash
from .result import brief, trial_result
from .sharded_checkpoint import ShardedTrainer
from .sharding import save_model, shard_on_cpu, sharded
from .task_eval import evaluate_task
from .tracking import RunInfo, plain_run, tracking

log = logging.getLogger("tunelm.train")


def write_json(path: Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def _check_optimizer(optimizer: str, device: str) -> None:
    if optimizer != "adamw_torch" and device != "cuda":
        raise ConfigError(
            f"train.optimizer {optimizer} needs bitsandbytes on a CUDA GPU; on this machine use "
            "--set train.optimizer=adamw_torch"
        )


def run_trial(cfg: Config, out_dir: str | Path, *, loaded=None, callbacks=(), progress=True,
              fraction: float = 1.0, resume_from: str | Path | None = None,
              save_state_to: str | Path | None = None,
              run: RunInfo | None = None, home: str | Path | None = None) -> dict:
    """Run one fine-tuning trial of `cfg` into `out_dir`; returns the result dict.

    `loaded` is an optional `(base_model, tokenizer)` pair to reuse (a search worker loads the
    base model once). `fraction` < 1 runs that share of the planned steps (a probe).
    `resume_from` continues the training state another run saved (weights, optimizer, scheduler,
    step counter) with this config's learning rate and weight decay, up to this config's steps;
    `save_state_to` saves that state at the end of training (population-based training). Raises
    TrainingError (with `.result`) when the run diverged or crashed; the trial directory is
    complete either way. `run` names the run for the trackers of `train.report_to` (a search
    trial's `tracking.trial_run`); by default it is named after `out_dir`.

    A checkpoint in `out_dir/resume` (saved every `train.checkpoint_minutes`, or on SIGTERM)
    is resumed from: the same curve continues. SIGTERM during training saves one and raises
    Preempted. `home` is the trial directory that holds the checkpoint when `out_dir` is
    another (a rank other than 0 writes to a scratch directory).
    """
    out = Path(out_dir)
    check_inputs(cfg, out, loaded)  # bad input is found before the trial directory exists
    check_devices(cfg.train.devices, visible())  # more ranks than devices: exit 2
    resume = None  # population-based training hands its training state over itself
    if resume_from is None and save_state_to is None:  # a checkpoint of another config: exit 2
        resume = checkpoint.resume_point(Path(home or out), cfg)
    if cfg.train.devices > 1 and not in_ranks():  # N ranks under torchrun: runner/launch.py
        return run_on_ranks(cfg, out, fraction=fraction, run=run, callbacks=callbacks,
                            resume_from=resume_from, save_state_to=save_state_to)
    created = not out.exists()
    try:
        return _run(cfg, out, loaded, callbacks, progress, fraction, resume_from, save_state_to,
                    run=run, resume=resume)
    except Preempted:  # not a crash: the checkpoint says where it stopped
        raise
    except BadInputError:
        if created:  # bad input leaves nothing half-written behind
            shutil.rmtree(out, ignore_errors=True)
        raise
    except Exception as exc:  # a crash mid-run (a full disk, say): the directory says so
        write_crash(out, exc)
        raise


def _run(cfg: Config, out: Path, loaded, callbacks, progress, fraction, resume_from=None,
         save_state_to=None, *, run=None, resume=None) -> dict:
    from transformers import set_seed

    started = time.time()
    device, precision = _start(cfg, out, resume)
    run = run or plain_run(out)
    with trial_log(out / "train.log"), ExitStack() as stack:
        log.info("trial %s | model %s | method %s | device %s | precision %s",
                 out, cfg.model.name, cfg.model.method, device, precision)
        set_seed(cfg.train.seed)
        if loaded is None:
            base, tokenizer = load_base_model(cfg.model, precision, device,  # fsdp: FSDP
                                              place=not sharded(cfg))[:2]  # places the shards
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
        params = count_parameters(model)
        plan = plan_steps(cfg.train, len(data.train), fraction=fraction)
        log.info("plan | %d steps | warmup %d | eval every %d | effective batch %d | "
                 "trainable %d of %d parameters", plan.total_steps, plan.warmup_steps,
                 plan.eval_steps, plan.effective_batch, *params)
        # the trackers hear of the run from here to the end of the final evaluation
        tracker = stack.enter_context(tracking(cfg, out, run))
        trained = _train(cfg, out, model, tokenizer, data, plan, precision, device, run,
                         callbacks, progress, resume_from, save_state_to, resume)
        if trained.stop_reason == "preempted":
            shutil.rmtree(out / "hf", ignore_errors=True)
            raise _preempted(trained, resume)
        final, task, pruned = None, {}, was_pruned(callbacks)  # (every rank asks)
        if trained.ok and not pruned:  # nothing reads a pruned trial's score
            final, task = score_best(cfg, out, trained, model, tokenizer, data, device,
                                     precision, whole=fraction >= 1)
        wall = time.time() - started
        result = trial_result(trained, task, baseline, wall, device=device, precision=precision,
                              params=params, plan=plan, data=data, out=out, final=final)
        if tracker is not None:
            tracker.finish(result)  # its summary, and result["tracking"]: where the run is
        write_json(out / "result.json", result)
        shutil.rmtree(out / "hf", ignore_errors=True)
        if resume is not None and rank() == 0:
            checkpoint.discard(resume.home)  # finished: nothing to resume any more
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


def _preempted(trained, resume) -> Preempted:
    where = resume.home / checkpoint.RESUME_DIR
    log.warning("preempted | checkpoint of step %d in %s", trained.step, where)
    return Preempted(f"stopped by SIGTERM at step {trained.step} with a checkpoint in {where}; "
                     "run the same command again (same --out) to resume from it",
                     step=trained.step, checkpoint=str(where))


def _start(cfg: Config, out: Path, resume) -> tuple[str, str]:
    """The trial directory without a previous run's results (a resumed run keeps the metrics
    up to its checkpoint's step), with this config; returns (device, precision), checked
    against the config."""
    import torch

    out.mkdir(parents=True, exist_ok=True)
    resuming = resume is not None and resume.path is not None
    for stale in ("result.json", "predictions.jsonl") + (() if resuming else ("metrics.jsonl",)):
        (out / stale).unlink(missing_ok=True)
    if resuming:
        checkpoint.keep_rows_until(out / "metrics.jsonl", resume.step)
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
    resumed_from: int = 0  # the checkpoint's step, when it resumed from one
    trainer: object = None
    eval_examples: int = 0  # the intermediate evaluations' examples

    @property
    def ok(self) -> bool:
        return self.error is None and not self.guard.reason and self.stop_reason != "preempted"


def _ours(cfg: Config, out: Path, model, tokenizer, resume) -> tuple:
    """Our callbacks: metrics, health guard, best keeper; where the run resumes, with the
    state they had at its checkpoint (and the best checkpoint kept so far)."""
    metrics = MetricsWriter(out / "metrics.jsonl")
    guard = HealthGuard(factor=cfg.train.divergence_factor)
    best_dir = out / "best"
    keeper = BestKeeper(
        best_dir if cfg.train.save_best else None,
        cfg.train.early_stopping_patience,
        cfg.train.early_stopping_threshold,
        save_fn=lambda d: save_model(model, tokenizer, d),  # under FSDP: every rank gathers
    )
    kept = (resume.state or {}).get("callbacks") if resume is not None else None
    if kept:
        for name, callback in (("metrics", metrics), ("guard", guard), ("keeper", keeper)):
            callback.restore(kept.get(name, {}))
    else:
        shutil.rmtree(best_dir, ignore_errors=True)
    return metrics, guard, keeper


def _train(cfg: Config, out: Path, model, tokenizer, data, plan, precision, device, run,
           callbacks, progress, resume_from, save_state_to, resume=None) -> _Trained:
    """Train `model` with the Trainer and our callbacks; the best checkpoint goes to out/best."""
    from transformers import Trainer
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    metrics, guard, keeper = _ours(cfg, out, model, tokenizer, resume)
    args = training_arguments(cfg, plan, out, precision, device, run)
    shard_on_cpu(model, cfg, device)  # fsdp on gloo ranks; on CUDA the Trainer shards (args)
    # what pruning and early stopping read: a seeded subset of the eval set (final_score.py)
    eval_rows, eval_examples = intermediate_eval_set(cfg, data.eval)
    # fsdp: each rank checkpoints its own shards (runner/sharded_checkpoint.py)
    trainer = (ShardedTrainer if sharded(cfg) else Trainer)(
        model=model,
        args=args,
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
    saver = None
    if resume is not None:  # periodic checkpoints, one on SIGTERM
        if isinstance(trainer, ShardedTrainer):
            trainer.checkpoint_home = resume.home  # where every rank writes its shard
        saver = checkpoint.Checkpointer(
            resume.home, cfg, checkpoint.interval_seconds(cfg.train.checkpoint_minutes, device),
            state=lambda: {"metrics": metrics.kept_state(), "guard": guard.kept_state(),
                           "keeper": keeper.kept_state()}, rank=rank())
        trainer.add_callback(saver)
        if resume.path is not None:
            resume_from = resume.path
            log.info("resuming from the checkpoint of step %d in %s", resume.step, resume.path)

    stop_reason = "completed"
    error = None
    try:
        # SIGTERM saves and stops where a Checkpointer acts on it; elsewhere (PBT) it ends the run
        with preempt.sigterm_noted() if saver is not None else nullcontext():
            trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    except KeyboardInterrupt:
        stop_reason = "interrupted"
        error = KeyboardInterrupt()
    step = trainer.state.global_step
    if saver is not None and saver.preempted:
        metrics.close()
        return _Trained(metrics, guard, keeper, step, "preempted", None, resume.step)
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
    return _Trained(metrics, guard, keeper, step, stop_reason, error,
                    resumed_from=resume.step if resume is not None else 0, trainer=trainer,
                    eval_examples=eval_examples)


__all__ = ["run_trial", "training_arguments", "training_kwargs"]
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
