"""What a study will cost before it runs (`tunelm search --dry-run`): the length of one full run
from the step plan, the data's token lengths and a throughput estimate, times the strategy's
number of full-run equivalents."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

from ..config import Config
from .space import dims_of
from .strategies import strategy_named


def run_equivalents(cfg: Config, dims=None) -> tuple[float, float] | None:
    """(fewest, most) full runs the strategy spends (its own definition); None when only a
    budget bounds it."""
    return strategy_named(cfg.search.strategy).run_equivalents(
        cfg, dims_of(cfg) if dims is None else dims)


def estimate_cost(cfg: Config, dims=None) -> dict:
    """Hours of one full run and of the study (pruning only makes it cheaper)."""
    from ..base_model import gpu_count
    from ..data import resolve_paths
    from ..plan import plan_steps
    from ..recommend.advice import Request
    from ..recommend.facts import model_facts
    from ..recommend.gather import dataset_facts, local_tokenizer
    from ..recommend.rules import throughput_estimate

    facts = model_facts(cfg.model.name)
    gpus = cfg.train.devices if gpu_count() else 0  # the ranks one trial really runs on
    with tempfile.TemporaryDirectory() as tmp:
        train, _ = resolve_paths(cfg.data, Path(tmp))
        data = dataset_facts(Request(model=cfg.model.name, data=train),
                             tokenizer=local_tokenizer(cfg.model.name))
    tokens_per_seq = min(data.avg_tokens, cfg.data.max_length)
    plan = plan_steps(cfg.train, data.examples)
    tps, how = throughput_estimate(facts, cfg.model.method, max(1, gpus), gpus > 0)
    run_tokens = plan.total_steps * plan.effective_batch * tokens_per_seq
    run_hours = run_tokens / tps / 3600
    runs = run_equivalents(cfg, dims)
    study = None if runs is None else tuple(r * run_hours * max(1, gpus) for r in runs)
    if study is not None and cfg.search.budget_hours is not None:
        study = tuple(min(h, cfg.search.budget_hours) for h in study)
    return {"steps": plan.total_steps, "effective_batch": plan.effective_batch,
            "tokens_per_sequence": round(tokens_per_seq, 1), "tokens_per_s": round(tps, 1),
            "throughput_source": how,
            "data_source": f"the built-in {cfg.data.task} task, tokenized" if cfg.data.task
            and not cfg.data.train else data.source,
            "run_hours": run_hours, "run_equivalents": runs, "study_device_hours": study}


def describe_cost(est: dict) -> str:
    run = est["run_hours"]
    lines = [f"one full run: {est['steps']} steps x {est['effective_batch']} sequences x "
             f"~{est['tokens_per_sequence']:.0f} tokens at ~{est['tokens_per_s']:.0f} tokens/s "
             f"= {_hours(run)} ({est['throughput_source']}; lengths {est['data_source']})"]
    if est["study_device_hours"] is None:
        lines.append("the study: bounded only by --budget-hours / --timeout (give --trials for "
                     "an estimate)")
    else:
        lo, hi = est["study_device_hours"]
        runs = est["run_equivalents"]
        span = _hours(hi) if math.isclose(lo, hi) else f"{_hours(lo)} to {_hours(hi)}"
        lines.append(f"the study: {span} of device time ({runs[0]:g}"
                     + ("" if runs[0] == runs[1] else f" to {runs[1]:g}")
                     + " full-run equivalents; pruning only lowers it)")
    return "\n".join(lines)


def _hours(h: float) -> str:
    return f"{h * 60:.1f} min" if h < 1 else f"{h:.2f} h"
