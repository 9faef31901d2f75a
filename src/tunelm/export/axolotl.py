"""Axolotl: one YAML in Axolotl's config schema (`axolotl train axolotl.yaml`).

Field names follow Axolotl 0.19's pydantic models, `AxolotlInputConfig` and its parts in
axolotl/utils/schemas/ (config.py, training.py, peft.py, model.py, datasets.py). Its training
values are the common Transformers arguments under Axolotl's names. Axolotl's `chat_template`
dataset type reads chat messages, so prompt/completion data is converted to messages beside the
export, the way tunelm converts it for training.
"""

from __future__ import annotations

import json
from pathlib import Path

from .. import hf_args
from ..errors import TunelmError
from . import common
from .source import Source

DEFAULT_NAME = "axolotl.yaml"

# Transformers argument -> Axolotl field, for the values that map one to one
RENAMES = {
    "per_device_train_batch_size": "micro_batch_size",
    "per_device_eval_batch_size": "eval_batch_size",
    "gradient_accumulation_steps": "gradient_accumulation_steps",
    "num_train_epochs": "num_epochs",
    "max_steps": "max_steps",
    "learning_rate": "learning_rate",
    "lr_scheduler_type": "lr_scheduler",
    "lr_scheduler_kwargs": "lr_scheduler_kwargs",
    "weight_decay": "weight_decay",
    "max_grad_norm": "max_grad_norm",
    "optim": "optimizer",
    "logging_steps": "logging_steps",
    "eval_steps": "eval_steps",
    "save_steps": "save_steps",
    "save_total_limit": "save_total_limit",
    "load_best_model_at_end": "load_best_model_at_end",
    "metric_for_best_model": "metric_for_best_model",
    "greater_is_better": "greater_is_better",
    "seed": "seed",
    "bf16": "bf16",
    "fp16": "fp16",
    "gradient_checkpointing": "gradient_checkpointing",
    "output_dir": "output_dir",
}


def build(src: Source, out: Path) -> common.Export:
    cfg = src.cfg
    d, lo, m = cfg.data, cfg.lora, cfg.model
    model, notes = common.model_ref(cfg)
    data, data_notes = common.data_ref(cfg, out)
    args, arg_notes = common.training_args(src, f"outputs/{out.stem}")
    notes += data_notes + arg_notes + common.common_notes(cfg)
    files: dict[Path, str] = {}

    model_block = {"base_model": model, "trust_remote_code": m.trust_remote_code}
    if m.revision:
        model_block["revision_of_model"] = m.revision
    adapter: dict = {}
    if m.method != "full":
        adapter = {"adapter": m.method, "lora_r": lo.r, "lora_alpha": round(lo.alpha),
                   "lora_dropout": lo.dropout}
        if lo.alpha != round(lo.alpha):
            notes.append(f"lora.alpha {lo.alpha:g}: Axolotl takes an integer, exported as "
                         f"{round(lo.alpha)}")
        if lo.target_modules == "all-linear":
            adapter["lora_target_linear"] = True
        else:
            adapter["lora_target_modules"] = _as_list(lo.target_modules)
        adapter.update(peft_use_rslora=lo.use_rslora, peft_use_dora=lo.use_dora)
        if m.method == "qlora":
            adapter["load_in_4bit"] = True
            adapter["bnb_config_kwargs"] = {k: v for k, v in hf_args.QLORA_QUANTIZATION.items()
                                            if k != "load_in_4bit"}

    datasets, converted, ds_notes = _datasets(cfg, data, out)
    files.update(converted)
    notes += ds_notes
    data_block = {"datasets": datasets[:1], "sequence_len": d.max_length,
                  "sample_packing": d.packing, "train_on_inputs": not d.completion_only}
    if data.format != "text":
        data_block["chat_template"] = "tokenizer_default"
    if len(datasets) > 1:
        data_block["test_datasets"] = datasets[1:]
    else:
        data_block["val_set_size"] = d.eval_fraction
        notes.append(f"data.eval_fraction {d.eval_fraction:g}: Axolotl holds out a split of its "
                     "own, not the examples tunelm held out")
    for key, what in (("max_examples", "training"), ("max_eval_examples", "eval")):
        if getattr(d, key) is not None:
            notes.append(f"data.{key} {getattr(d, key)}: Axolotl uses every {what} example")

    train = {RENAMES[k]: v for k, v in args.items() if k in RENAMES}
    train["warmup_ratio"] = cfg.train.warmup_ratio
    stopping = common.early_stopping(cfg)
    if stopping:
        train["early_stopping_patience"] = stopping["early_stopping_patience"]
        notes.append(f"train.early_stopping_threshold {cfg.train.early_stopping_threshold:g}: "
                     "Axolotl's early stopping counts any eval-loss improvement")
    dropped = sorted(set(args) - set(RENAMES) - {
        "warmup_steps", "eval_strategy", "save_strategy", "per_device_eval_batch_size",
        "report_to", "data_seed"})
    if dropped:  # a new training argument nobody mapped yet: say so rather than lose it
        notes.append(f"Transformers arguments with no Axolotl field here: {', '.join(dropped)}")

    lines = common.header(src, f"axolotl train {out.name}", "An Axolotl config")
    if model != m.name:
        lines.append(f"base_model is {m.name!r} in tunelm.")
    text = common.comment_block(lines, notes) + "\n"
    text += common.yaml_blocks([
        ("model", model_block), ("adapter", adapter), ("data", data_block),
        ("training", train)],
        comments={"lora_target_linear": "tunelm: all-linear",
                  "chat_template": "the tokenizer's own template, as tunelm uses",
                  "warmup_ratio": "of the steps; linear from 0"})
    files = {out: text, **files}
    return common.Export(files, notes, data)


def _as_list(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _datasets(cfg, data: common.DataRef, out: Path) -> tuple[list[dict], dict, list[str]]:
    """Axolotl dataset entries (train, then eval if there is a file), converted files, notes."""
    d = cfg.data
    files: dict[Path, str] = {}
    notes: list[str] = []
    task = data.task_dir is not None
    if data.format == "text":
        kind = {"type": "completion", "field": "text" if task else d.text_column}
    else:
        roles = ["assistant"] if d.completion_only else ["system", "user", "assistant", "tool"]
        kind = {"type": "chat_template", "field_messages": "messages" if task else
                d.messages_column, "roles_to_train": roles}
    entries = []
    for path in filter(None, (data.train, data.eval)):
        if data.format == "prompt_completion":
            target = out.parent / f"{out.stem}_data" / f"{Path(path).stem}.messages.jsonl"
            try:
                rows = common.messages_rows(path, "prompt_completion", cfg)
            except TunelmError as exc:
                notes.append(f"{path} could not be converted to chat messages here ({exc}); "
                             "convert it before training")
            else:
                files[target.resolve()] = "".join(json.dumps(r, ensure_ascii=False) + "\n"
                                                  for r in rows)
                path = str(target.resolve())
                kind = {**kind, "field_messages": "messages"}
        ds_type = "csv" if data.kind == "csv" and data.format != "prompt_completion" else "json"
        entries.append({"path": path, "ds_type": ds_type, "split": "train", **kind})
    if data.format == "prompt_completion" and files:
        notes.append("data.format prompt_completion: Axolotl's chat_template type reads chat "
                     "messages; the export converts each pair to a user and an assistant turn, "
                     f"as tunelm does, into {out.stem}_data/")
    return entries, files, notes
