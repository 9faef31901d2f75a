"""`tunelm train --dry-run`: the step plan a config would train with, without training.

The sequence count comes from the dataset statistics `recommend` and `search --dry-run` use
(examples, not packed sequences), so the steps are an estimate; the effective batch is exact.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..config import Config
from ..plan import StepPlan, plan_steps


def preview_plan(cfg: Config) -> StepPlan:
    """The step plan of `cfg` over its training examples, on `train.devices` ranks."""
    from ..data import resolve_paths
    from ..recommend.advice import Request
    from ..recommend.gather import dataset_facts, local_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        train, _ = resolve_paths(cfg.data, Path(tmp))
        data = dataset_facts(Request(model=cfg.model.name, data=train),
                             tokenizer=local_tokenizer(cfg.model.name))
    return plan_steps(cfg.train, data.examples)


def describe_plan(plan: StepPlan) -> str:
    return "\n".join([
        f"effective batch   {plan.effective_batch} = micro-batch {plan.batch_size} x "
        f"accumulation {plan.grad_accum} x {plan.world_size} rank(s)",
        f"steps             {plan.total_steps} ({plan.steps_per_epoch} per epoch over "
        f"{plan.sequences} examples), warmup {plan.warmup_steps}, eval every {plan.eval_steps}",
        f"scheduler         {plan.scheduler}",
    ])
