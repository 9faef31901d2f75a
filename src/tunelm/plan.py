"""Derived training values, computed in one place: steps, warmup, evaluation cadence, schedule.

Pure functions of the config and the dataset size, so they are unit-tested without training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .hf_args import HF_SCHEDULERS

TARGET_EVALS = 12  # about a dozen evaluations per run when eval_steps is not given


@dataclass
class StepPlan:
    sequences: int
    batch_size: int
    grad_accum: int
    world_size: int
    effective_batch: int
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    eval_steps: int
    scheduler: str
    scheduler_kwargs: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def plan_steps(train, sequences: int, world_size: int | None = None,
               fraction: float = 1.0) -> StepPlan:
    """The step plan of a TrainConfig over `sequences` training sequences.

    `world_size` is the number of data-parallel ranks that really train: `train.devices` unless
    given. Effective batch = micro-batch x accumulation x ranks, here and everywhere else.

    `fraction` < 1 runs only that share of the planned steps (a search's low-fidelity probe);
    the schedule is laid over the shortened run, as it would be for a short run of its own.
    """
    if world_size is None:
        world_size = getattr(train, "devices", 1)
    effective = train.batch_size * train.grad_accum * world_size
    micro_batches = math.ceil(sequences / (train.batch_size * world_size))
    steps_per_epoch = max(1, math.ceil(micro_batches / train.grad_accum))
    total = train.max_steps or max(1, math.ceil(train.epochs * steps_per_epoch))
    total = max(1, math.ceil(total * fraction))
    warmup = int(round(train.warmup_ratio * total))
    eval_steps = train.eval_steps or max(1, total // TARGET_EVALS)
    if fraction < 1:
        eval_steps = max(1, math.ceil(eval_steps * fraction))
    kwargs: dict = {}
    if train.scheduler == "wsd":
        # warmup, then stable until wsd_stable_end, then linear decay to 0 over the rest
        stable_end = max(warmup, int(round(train.wsd_stable_end * total)))
        kwargs = {"num_decay_steps": total - stable_end, "decay_type": "linear"}
    elif train.scheduler == "cosine_with_restarts":
        kwargs = {"num_cycles": train.num_cycles}
    return StepPlan(
        sequences=sequences,
        batch_size=train.batch_size,
        grad_accum=train.grad_accum,
        world_size=world_size,
        effective_batch=effective,
        steps_per_epoch=steps_per_epoch,
        total_steps=total,
        warmup_steps=warmup,
        eval_steps=min(eval_steps, total),
        scheduler=HF_SCHEDULERS[train.scheduler],
        scheduler_kwargs=kwargs,
    )
