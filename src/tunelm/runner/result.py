"""A trial's `result.json`: how training went, what it cost, and where its best checkpoint is.

A resumed trial's counts are the whole trial's: the step, tokens and training seconds carry on
from its checkpoint (`runner/checkpoint.py`), so nothing is counted twice.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..tasks.metrics import brief as brief_scores


def trial_result(trained, task: dict, baseline: dict, wall: float, *, device: str,
                 precision: str, params: tuple[int, int], plan, data, out: Path,
                 final: dict | None = None) -> dict:
    """The result dict of a trial `trained` (runner.trial._Trained) over `wall` seconds."""
    trainable, total = params
    return {
        "status": "ok" if trained.ok else "failed",
        "stop_reason": trained.stop_reason,
        "best_eval_loss": clean(trained.keeper.best_loss),
        "best_step": trained.keeper.best_step,
        "final_eval_loss": clean(trained.keeper.last_loss),
        "final_step": trained.step,
        "eval_examples": {"pruning": trained.eval_examples, "final": len(data.eval)},
        "final_score": final,  # the best checkpoint on the whole eval set (final_score.py)
        "task_metrics": task,
        "baseline_task_metrics": baseline,
        **throughput(trained.metrics, wall),
        **peak_memory_mb(device),
        "device": device,
        "precision": precision,
        "trainable_parameters": trainable,
        "total_parameters": total,
        "plan": plan.as_dict(),
        "data": data.stats,
        "best_checkpoint": "best" if (out / "best").exists() else None,
        **({"resumed_from_step": trained.resumed_from} if trained.resumed_from else {}),
    }


def peak_memory_mb(device: str) -> dict:
    import resource

    import torch

    out = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if device == "cuda":
        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def throughput(metrics, wall: float) -> dict:
    seconds = metrics.train_seconds
    return {
        "train_seconds": round(seconds, 2),
        "wall_seconds": round(wall, 2),
        "tokens_seen": metrics.tokens_seen,
        "tokens_per_s": round(metrics.tokens_seen / seconds, 1) if seconds else None,
    }


def clean(x):
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x


def brief(task: dict) -> str:
    return brief_scores(task) or "none"
