"""Throughput of a `tunelm train` trial against a bare PyTorch + PEFT loop.

Same base model (loaded once), same encoded data, same batch, dtype, optimizer and schedule,
measured in the same run, alternating bare / tunelm so drift on a noisy machine hits both. Both
count non-padding input tokens over the whole training loop (data loading, forward, backward,
clipping, optimizer and scheduler steps, one loss read per step); model loading and evaluation are
outside both clocks. The figure of merit is the ratio tunelm / bare of the median tokens/s.

    .venv/bin/python benchmarks/throughput.py                      # embedded SmolLM2-135M, ~6 min
    .venv/bin/python benchmarks/throughput.py --model tiny --steps 40   # seconds
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def make_config(args):
    from tunelm.config import from_dict

    return from_dict({
        "model": {"name": args.model, "precision": args.precision},
        "lora": {"r": 16, "alpha": 32, "dropout": 0.0},
        "data": {"task": "contracts", "task_train_size": args.batch * args.steps,
                 "task_eval_size": 4, "max_length": 1024},
        "train": {"learning_rate": 1e-3, "scheduler": "cosine", "warmup_ratio": 0.1,
                  "batch_size": args.batch, "max_steps": args.steps, "eval_steps": args.steps,
                  "early_stopping_patience": None, "logging_steps": 1},
        "eval": {"metric": "none"},
    })


def same_batches(cfg, model, tokenizer, train, precision, device):
    """The very batches, in the same order, that tunelm's Trainer draws (same sampler and seed),
    so padding, and so compute per token, is identical on both sides."""
    import tempfile

    from transformers import Trainer

    from tunelm.data import Collator, ListDataset
    from tunelm.plan import plan_steps
    from tunelm.runner.trial import training_arguments

    plan = plan_steps(cfg.train, len(train))
    args = training_arguments(cfg, plan, Path(tempfile.mkdtemp()), precision, device)
    trainer = Trainer(model=model, args=args, train_dataset=ListDataset(train),
                      eval_dataset=ListDataset(train[:1]),
                      data_collator=Collator(tokenizer.pad_token_id))
    return trainer.get_train_dataloader()


def bare_loop(cfg, base, tokenizer, train, precision: str, device: str) -> dict:
    """The loop a careful engineer writes by hand: PEFT, AdamW, the same schedule, clipping."""
    import torch
    from transformers import get_scheduler

    from tunelm.base_model import attach_method
    from tunelm.plan import plan_steps
    from tunelm.runner.task_eval import autocast

    torch.manual_seed(cfg.train.seed)
    model = attach_method(base, cfg)
    model.train()
    plan = plan_steps(cfg.train, len(train))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.train.learning_rate, weight_decay=cfg.train.weight_decay)
    sched = get_scheduler("cosine", opt, num_warmup_steps=plan.warmup_steps,
                          num_training_steps=plan.total_steps)
    loader = same_batches(cfg, model, tokenizer, train, precision, device)
    tokens = 0
    start = time.perf_counter()
    for _, batch in zip(range(plan.total_steps), loader):
        batch = {k: v.to(device) for k, v in batch.items()}
        tokens += int(batch["attention_mask"].sum())
        with autocast(device, precision):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.train.max_grad_norm)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
    seconds = time.perf_counter() - start
    model.unload()
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=None, help="JSON record (default: benchmarks/data/)")
    args = parser.parse_args()

    import logging
    import warnings

    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    logging.getLogger("tunelm").setLevel(logging.WARNING)

    from tunelm.base_model import device_type, load_base_model, resolve_precision
    from tunelm.data import prepare
    from tunelm.runner import run_trial

    cfg = make_config(args)
    device = device_type()
    precision = resolve_precision(cfg.model.precision, device)
    base, tok, _ = load_base_model(cfg.model, precision, device)
    runs = {"bare": [], "tunelm": []}
    with tempfile.TemporaryDirectory() as tmp:
        data = prepare(tok, cfg.data, Path(tmp))
        for r in range(args.repeats):
            runs["bare"].append(bare_loop(cfg, base, tok, data.train, precision, device))
            result = run_trial(cfg, Path(tmp) / f"trial{r}", loaded=(base, tok), progress=False)
            runs["tunelm"].append({"tokens": result["tokens_seen"], "seconds": result["train_seconds"],
                                   "tokens_per_s": result["tokens_per_s"]})
            print(f"repeat {r}: bare {runs['bare'][-1]['tokens_per_s']:.1f} tok/s, "
                  f"tunelm {runs['tunelm'][-1]['tokens_per_s']:.1f} tok/s", flush=True)
    bare = statistics.median(x["tokens_per_s"] for x in runs["bare"])
    ours = statistics.median(x["tokens_per_s"] for x in runs["tunelm"])
    record = {
        "model": args.model, "device": device, "precision": precision, "batch": args.batch,
        "steps": args.steps, "repeats": args.repeats, "runs": runs,
        "bare_tokens_per_s": round(bare, 1), "tunelm_tokens_per_s": round(ours, 1),
        "ratio": round(ours / bare, 3), "target": ">= 0.9",
    }
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "data" / f"throughput-{args.model.split(':')[0]}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"| {args.model} | {device} | {precision} | {args.batch} | {bare:.1f} | {ours:.1f} | "
          f"{ours / bare:.3f} |")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
