"""`tunelm recommend --measure`: the one place recommend runs the trainer, for a few real steps."""

from __future__ import annotations

import copy
import json
import statistics
import tempfile
from pathlib import Path


def measure_throughput(config, steps: int = 5) -> float:
    """Tokens/s of a few real training steps of `config` (the first step, a warm-up, excluded)."""
    from ..runner import run_trial

    cfg = copy.deepcopy(config)
    cfg.train.max_steps = steps
    cfg.train.eval_steps = steps
    cfg.train.early_stopping_patience = None
    cfg.train.save_best = False
    cfg.data.max_examples = cfg.train.batch_size * cfg.train.grad_accum * steps
    cfg.data.max_eval_examples = 2
    cfg.eval.metric = "none"
    with tempfile.TemporaryDirectory() as tmp:
        run_trial(cfg, Path(tmp) / "measure", progress=False)
        lines = (Path(tmp) / "measure" / "metrics.jsonl").read_text().splitlines()
    speeds = [r["tokens_per_s"] for r in map(json.loads, lines) if r.get("tokens_per_s")][1:]
    return statistics.median(speeds) if speeds else 0.0
