"""What a trial evaluates, and on what: the intermediate evaluations on a seeded subset, the
final score on the whole eval set.

The evaluations at eval steps (the Trainer's eval loss, which pruning, the curve pruner, early
stopping and the choice of the best checkpoint read) run on `eval.pruning_examples` eval
examples, a seeded sample fixed for the study (every trial of a study sees the same subset, so
their curves compare). When training ends and the trial was not pruned, the best checkpoint is
scored once on the whole eval set: its eval loss there (`final_score` in result.json: the
study's objective value) and the task metric by generation. A subset as large as the eval set
changes nothing: the run's best eval loss is its final score, with no second pass. A probe (a
share of a run's steps, which a strategy compares only with other probes) has no final score:
its value is its best on the subset, like the prunings it serves. Early stopping and the best
checkpoint are chosen on the subset too: with a small subset the best step can differ from the
one the whole set would pick; the final score says what that checkpoint is worth.
"""

from __future__ import annotations

import json
import logging
import random
import time
from pathlib import Path

from ..base_model import load_best
from ..data import ListDataset
from .result import brief
from .sharding import is_sharded_model
from .task_eval import evaluate_task

log = logging.getLogger("tunelm.train")


def pruning_subset(n: int, k: int | None, seed: int) -> list[int] | None:
    """The indices (sorted) of the `k` of `n` eval examples the intermediate evaluations use,
    a seeded sample; None when they use all `n` (`k` empty or >= n)."""
    if k is None or k >= n:
        return None
    if k < 1:
        raise ValueError(f"eval.pruning_examples must be >= 1, got {k}")
    return sorted(random.Random(seed).sample(range(n), k))


def intermediate_eval_set(cfg, eval_rows):
    """(the eval examples of the intermediate evaluations, how many): a seeded subset of
    `eval_rows` of `cfg.eval.pruning_examples`, or all of them."""
    chosen = pruning_subset(len(eval_rows), cfg.eval.pruning_examples, cfg.data.seed)
    if chosen is None:
        return eval_rows, len(eval_rows)
    return [eval_rows[i] for i in chosen], len(chosen)


def was_pruned(callbacks) -> bool:
    """Whether a pruner among `callbacks` stopped the run (it sets `pruned_at`): a pruned trial
    is not scored, since nothing reads a pruned trial's score. On several ranks every rank
    takes rank 0's answer (only rank 0 holds the pruner), so none waits alone in the final
    pass's collective."""
    pruned = any(getattr(cb, "pruned_at", None) is not None for cb in callbacks)
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        decision = [pruned]
        dist.broadcast_object_list(decision, src=0)
        pruned = decision[0]
    return pruned


def score_best(cfg, out: Path, trained, model, tokenizer, data, device: str,
               precision: str, whole: bool = True) -> tuple[dict | None, dict]:
    """The best checkpoint (put back on `model`) scored on the whole eval set: returns
    (final_score, task metrics) and writes predictions.jsonl. `trained` is the runner's record
    of training (its keeper, its trainer, the size of the subset it evaluated on). A probe
    (`whole` False: a share of a run's steps) is judged by its curve, like the prunings it
    serves: no eval-loss pass on the whole set (final_score None), the task metric as set."""
    keeper = trained.keeper
    checkpoint = "last"
    if (out / "best").exists():
        if not is_sharded_model(model):  # a sharded model takes best/ back through FSDP only
            load_best(model, out / "best", cfg.model.method)
        checkpoint = "best"
    final = {"examples": len(data.eval), "step": keeper.best_step if checkpoint == "best"
             else trained.step, "checkpoint": checkpoint, "seconds": 0.0}
    if not whole:
        final = None
    elif trained.eval_examples >= len(data.eval) and checkpoint == "best":
        final["eval_loss"] = keeper.best_loss  # the subset was the whole set: no second pass
    elif is_sharded_model(model):  # the whole set's pass would score the last weights
        final["note"] = ("not scored under train.sharding fsdp: the objective is the best "
                         "eval loss on the subset; score best/ with tunelm evaluate")
    else:
        started = time.perf_counter()
        scored = trained.trainer.evaluate(eval_dataset=ListDataset(data.eval),
                                          metric_key_prefix="final")
        final["eval_loss"] = scored.get("final_loss")
        final["seconds"] = round(time.perf_counter() - started, 2)
        log.info("final score | eval_loss %.4f on all %d eval examples (%s checkpoint, step "
                 "%s)", final["eval_loss"], final["examples"], checkpoint, final["step"])
    started = time.perf_counter()
    task, rows = evaluate_task(model, tokenizer, data.eval_records, cfg.data, cfg.eval,
                               device, precision)
    if final is not None:
        final["generate_seconds"] = round(time.perf_counter() - started, 2) if task else 0.0
    log.info("task metrics of the best checkpoint: %s", brief(task))
    if rows:
        with open(out / "predictions.jsonl", "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return final, task

