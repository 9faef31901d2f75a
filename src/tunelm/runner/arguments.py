"""A trial's own `TrainingArguments`: the config's (`hf_args`, the one mapping `tunelm export`
shares) with this run's on top (its directory, device, trackers, ranks)."""

from __future__ import annotations

from pathlib import Path

from .. import hf_args
from ..config import Config
from .launch import ddp_fields
from .tracking import RunInfo, trainer_fields


def training_kwargs(cfg: Config, plan, out: Path, precision: str, device: str,
                    run: RunInfo | None = None) -> dict:
    """The `TrainingArguments` keyword arguments of a trial: the config's (`hf_args`, the one
    mapping `tunelm export` shares) and this run's own on top. `run` names the run for the
    trackers of `train.report_to`."""
    kw = hf_args.training_kwargs(cfg, plan, precision)
    kw.update(
        output_dir=str(out / "hf"),
        logging_nan_inf_filter=False,  # the health guard must see NaN losses
        save_strategy="no",  # best/: BestKeeper; resume/: runner/checkpoint.py asks for its saves
        **trainer_fields(cfg, run),  # report_to, run_name: runner/tracking.py
        use_cpu=device == "cpu",
        include_num_input_tokens_seen="non_padding",  # the throughput count
        remove_unused_columns=False,  # our collator reads input_ids and labels
        label_names=["labels"],
        dataloader_pin_memory=device == "cuda",
        disable_tqdm=False,
        **ddp_fields(device, cfg.train.sharding),  # N ranks: backend, timeout
    )
    return kw


def training_arguments(cfg: Config, plan, out: Path, precision: str, device: str,
                       run: RunInfo | None = None):
    from transformers import TrainingArguments

    return TrainingArguments(**training_kwargs(cfg, plan, out, precision, device, run))
