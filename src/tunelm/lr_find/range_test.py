"""The range test on a real model: a fresh adapter (or the full weights) trained one optimizer step
per rate, with the config's data, batch, accumulation, weight decay and clipping, until the
schedule ends or the smoothed loss diverges. Nothing is left behind on the model: LoRA layers are
unloaded, full fine-tuning weights restored from a copy, requires_grad flags, gradient
checkpointing, train/eval mode and the global random state put back.

    result = run_lr_find(load_config("presets/demo.yaml"), "runs/demo-lr-find")
    result["suggestions"]["steepest"]["lr"]
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from pathlib import Path

from ..config import Config
from ..errors import ConfigError, TrainingError
from ..files import write_text_atomic
from ..logs import trial_log
from .curve import (
    BETA,
    DIVERGENCE_FACTOR,
    STEEPEST_BACKOFF,
    analyze,
    diverged,
    schedule,
    smooth,
)

log = logging.getLogger("tunelm.lr_find")
step_log = logging.getLogger("tunelm.train")  # step lines: in lr_find.log, on the console with -v

MIN_STEPS = 10


def check_range(min_lr: float, max_lr: float, steps: int) -> None:
    """Raise ConfigError, naming the flags, unless 0 < min_lr < max_lr and steps >= 10."""
    problems = []
    if not (isinstance(min_lr, (int, float)) and math.isfinite(min_lr) and min_lr > 0):
        problems.append(f"--min-lr must be a number > 0, got {min_lr!r}")
    if not (isinstance(max_lr, (int, float)) and math.isfinite(max_lr) and max_lr > 0):
        problems.append(f"--max-lr must be a number > 0, got {max_lr!r}")
    elif not problems and min_lr >= max_lr:
        problems.append(f"--min-lr ({min_lr:g}) must be below --max-lr ({max_lr:g}); the rate "
                        "grows from the first to the second")
    if not isinstance(steps, int) or steps < MIN_STEPS:
        problems.append(f"--steps must be an integer >= {MIN_STEPS} (100 is usual), got {steps!r}")
    if problems:
        raise ConfigError(problems)


def run_lr_find(cfg: Config, out_dir: str | Path, *, min_lr: float = 1e-7, max_lr: float = 1.0,
                steps: int = 100, loaded=None, beta: float = BETA,
                backoff: float = STEEPEST_BACKOFF, progress: bool = True) -> dict:
    """Run the range test of `cfg` and write `lr_find.json`, `lr_find.png` and `lr_find.log`
    under `out_dir`; returns what lr_find.json holds.

    `loaded` is an optional `(base_model, tokenizer)` pair to reuse; the model comes back as it
    was. Raises ConfigError for a bad range, TrainingError (after writing the files) when the
    test diverged too early to suggest anything.
    """
    check_range(min_lr, max_lr, steps)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with trial_log(out / "lr_find.log"):
        record = _run(cfg, loaded, min_lr, max_lr, steps, beta, backoff, progress)
        record["wall_seconds"] = round(time.time() - started, 2)
        write_text_atomic(out / "lr_find.json", json.dumps(record, indent=2) + "\n")
        from .plot import write_png

        write_png(record, out / "lr_find.png")
        if record["suggested_lr"] is None:
            raise TrainingError(f"lr-find: no suggestion: {record['note']}. See {out}")
        s, v = record["suggestions"]["steepest"], record["suggestions"]["valley"]
        log.info("lr-find | suggestion %.2e (%s) | valley %.2e | %d steps, %s | %.0f s",
                 s["lr"], s["how"], v["lr"], record["steps_run"], record["stop_reason"],
                 record["wall_seconds"])
    return record


def _run(cfg, loaded, min_lr, max_lr, steps, beta, backoff, progress) -> dict:
    import torch

    from ..base_model import adapted, device_type, load, resolve_precision
    from ..data import prepare

    if loaded is None:
        model, tok, device, precision = load(cfg.model)
    else:
        (model, tok), device = loaded, device_type()
        precision = resolve_precision(cfg.model.precision, device)
    with tempfile.TemporaryDirectory() as work:  # a built-in task writes its files here
        data = prepare(tok, cfg.data, Path(work))
    lrs = schedule(min_lr, max_lr, steps)
    log.info("lr-find | %s | method %s | device %s | precision %s | %d steps, lr %.1e to %.1e "
             "| %d training sequences, batch %d x accumulation %d", cfg.model.name,
             cfg.model.method, device, precision, steps, min_lr, max_lr, len(data.train),
             cfg.train.batch_size, cfg.train.grad_accum)
    devices = [torch.cuda.current_device()] if device == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(cfg.train.seed)  # the adapter starts as a trial's would
        # the model comes back as it was: adapter unloaded, full weights copied back
        with adapted(model, cfg, cfg.train.gradient_checkpointing) as tuned:
            losses, stop = _train(tuned, tok, cfg, data.train, lrs, beta, device, precision,
                                  progress)
    ran = len(losses)
    result = analyze(lrs[:ran], losses, planned_steps=steps, beta=beta, backoff=backoff)
    sug = {"steepest": result.steepest.as_dict() if result.steepest else None,
           "valley": result.valley.as_dict() if result.valley else None}
    return {
        "model": cfg.model.name, "method": cfg.model.method, "device": device,
        "precision": precision,
        "lora": {"r": cfg.lora.r, "alpha": cfg.lora.alpha} if cfg.model.method != "full" else None,
        "batch_size": cfg.train.batch_size, "grad_accum": cfg.train.grad_accum,
        "weight_decay": cfg.train.weight_decay, "max_grad_norm": cfg.train.max_grad_norm,
        "optimizer": "adamw_torch", "train_sequences": len(data.train),
        "min_lr": min_lr, "max_lr": max_lr, "steps": steps, "steps_run": ran,
        "stop_reason": stop or "schedule finished",
        "diverged_at_lr": lrs[ran - 1] if stop else None,  # the high end of the bracket
        "beta": beta, "backoff": backoff,
        "divergence_factor": DIVERGENCE_FACTOR, "window": list(result.window),
        "suggested_lr": sug["steepest"]["lr"] if sug["steepest"] else None,
        "suggestions": sug, "note": result.note,
        "curve": [{"step": i + 1, "lr": lr, "loss": loss, "smoothed": s}
                  for i, (lr, loss, s) in enumerate(zip(result.lrs, result.losses,
                                                        result.smoothed))]
        + [{"step": i + 1, "lr": lrs[i], "loss": None, "smoothed": None}
           for i in range(len(result.losses), ran)],  # a non-finite loss ends the curve
    }


def _batches(n: int, size: int, seed: int):
    """Indices of `size` examples at a time, reshuffled (seeded) at every pass over the data."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    order: list[int] = []
    while True:
        while len(order) < size:
            order += torch.randperm(n, generator=gen).tolist()
        yield order[:size]
        order = order[size:]


def _train(tuned, tok, cfg, train, lrs, beta, device, precision, progress):
    """One optimizer step per rate on `tuned` (the model with its fresh adapter, or the full
    model); returns (raw losses, stop reason or None)."""
    import torch
    from tqdm import tqdm

    from ..data import Collator
    from ..runner.task_eval import autocast

    t = cfg.train
    tuned.train()
    params = [p for p in tuned.parameters() if p.requires_grad]
    # AdamW as the Trainer sets it up: no weight decay on biases and norms (1-d tensors)
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": t.weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=lrs[0])
    collate = Collator(tok.pad_token_id)
    batches = _batches(len(train), t.batch_size, t.seed)
    losses: list[float] = []
    best, stop = math.inf, None
    bar = tqdm(total=len(lrs), desc="lr-find", unit="step", disable=not progress, leave=False)
    for step, lr in enumerate(lrs, start=1):
        for g in opt.param_groups:
            g["lr"] = lr
        micro = []
        for _ in range(t.grad_accum):
            batch = {k: v.to(device) for k, v in collate([train[i] for i in next(batches)]).items()}
            with autocast(device, precision):
                loss = tuned(**batch, use_cache=False).loss  # packed rows: block-diagonal attention
            (loss / t.grad_accum).backward()
            micro.append(loss.item())
        if t.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, t.max_grad_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        raw = sum(micro) / len(micro)
        losses.append(raw)
        smoothed = smooth(losses, beta)[-1] if math.isfinite(raw) else raw
        best = min(best, smoothed)
        step_log.info("step %d | lr %.3e | loss %.4f | smoothed %.4f", step, lr, raw, smoothed)
        bar.set_postfix({"lr": f"{lr:.1e}", "loss": f"{smoothed:.4f}"}, refresh=False)
        bar.update()
        stop = diverged(smoothed, best, raw)
        if stop:
            log.info("lr-find stops at step %d: %s", step, stop)
            break
    bar.close()
    return losses, stop
