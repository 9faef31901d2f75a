"""`tunelm recommend`: a sound starting configuration at zero compute, every value explained.

    >>> from tunelm.recommend import Request, recommend
    >>> rec = recommend(Request(model="meta-llama/Llama-3.1-8B", examples=5000, avg_tokens=400,
    ...                         gpus=1, gpu_memory=80))
    >>> rec.advice["train.learning_rate"].value
    0.000286
"""

from .facts import ModelFacts, model_facts
from .memory import MemoryEstimate, estimate
from .render import RENDERERS, to_json, to_text, to_yaml
from .rules import Advice, Recommendation, Request, formula_lr, recommend

__all__ = [
    "Advice", "MemoryEstimate", "ModelFacts", "RENDERERS", "Recommendation", "Request",
    "estimate", "formula_lr", "measure_throughput", "model_facts", "recommend", "to_json",
    "to_text", "to_yaml",
]


def measure_throughput(config, steps: int = 5) -> float:
    """Tokens/s of a few real training steps of `config` (the first step, a warm-up, excluded)."""
    import copy
    import statistics
    import tempfile
    from pathlib import Path

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
        import json

        rows = [json.loads(x) for x in (Path(tmp) / "measure" / "metrics.jsonl").read_text().splitlines()]
    speeds = [r["tokens_per_s"] for r in rows if r.get("tokens_per_s")][1:]
    return statistics.median(speeds) if speeds else 0.0
