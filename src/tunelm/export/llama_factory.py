"""LLaMA-Factory: a YAML of its train arguments (`llamafactory-cli train llama_factory.yaml`) and
the `dataset_info.json` that names the data files for it.

Field names follow LLaMA-Factory 0.9.5's argument dataclasses, llamafactory/hparams/
(model_args.py, data_args.py, finetuning_args.py; training arguments are Transformers'
`Seq2SeqTrainingArguments`, so the common Transformers arguments go in as they are), and the
dataset description of llamafactory/data/parser.py (`DatasetAttr`).
"""

from __future__ import annotations

from pathlib import Path

from . import common
from .source import Source

DEFAULT_NAME = "llama_factory.yaml"
TRAIN_NAME, EVAL_NAME = "tunelm_train", "tunelm_eval"


def build(src: Source, out: Path) -> common.Export:
    cfg = src.cfg
    d, lo, m, t = cfg.data, cfg.lora, cfg.model, cfg.train
    model, notes = common.model_ref(cfg)
    data, data_notes = common.data_ref(cfg, out)
    args, arg_notes = common.training_args(src, f"outputs/{out.stem}")
    notes += data_notes + arg_notes + common.common_notes(cfg)
    data_dir = (out.parent / f"{out.stem}_data").resolve()

    model_block = {"model_name_or_path": model, "trust_remote_code": m.trust_remote_code}
    if m.revision:
        model_block["model_revision"] = m.revision
    if m.method == "qlora":
        model_block.update(quantization_bit=4, quantization_method="bnb", quantization_type="nf4",
                           double_quantization=True)
    model_block["disable_gradient_checkpointing"] = not args.pop("gradient_checkpointing")

    method = {"stage": "pt" if data.format == "text" else "sft", "do_train": True,
              "finetuning_type": "full" if m.method == "full" else "lora"}
    if m.method != "full":
        target = lo.target_modules
        method.update(lora_rank=lo.r, lora_alpha=round(lo.alpha), lora_dropout=lo.dropout,
                      lora_target="all" if target == "all-linear" else
                      ",".join([target] if isinstance(target, str) else target),
                      use_rslora=lo.use_rslora, use_dora=lo.use_dora)
        if lo.alpha != round(lo.alpha):
            notes.append(f"lora.alpha {lo.alpha:g}: LLaMA-Factory takes an integer, exported as "
                         f"{round(lo.alpha)}")
    stopping = common.early_stopping(cfg)
    if stopping:
        method["early_stopping_steps"] = stopping["early_stopping_patience"]
        notes.append(f"train.early_stopping_threshold {t.early_stopping_threshold:g}: "
                     "LLaMA-Factory's early stopping counts any eval-loss improvement")

    dataset = {"dataset": TRAIN_NAME, "dataset_dir": str(data_dir), "cutoff_len": d.max_length,
               "packing": d.packing}
    if data.format != "text":
        dataset["train_on_prompt"] = not d.completion_only
    if data.eval:
        dataset["eval_dataset"] = EVAL_NAME
    else:
        dataset["val_size"] = d.eval_fraction
        notes.append(f"data.eval_fraction {d.eval_fraction:g}: LLaMA-Factory holds out a split of "
                     "its own, not the examples tunelm held out")
    if d.max_examples is not None:
        dataset["max_samples"] = d.max_examples
        notes.append(f"data.max_examples {d.max_examples}: LLaMA-Factory's max_samples takes the "
                     "first examples of each dataset, tunelm a seeded sample of the training data")
    if d.max_eval_examples is not None:
        notes.append(f"data.max_eval_examples {d.max_eval_examples}: no equivalent")

    lines = common.header(src, f"llamafactory-cli train {out.name}", "A LLaMA-Factory config")
    lines += ["", "template: not set, so LLaMA-Factory parses the tokenizer's own chat template, "
              "as tunelm uses it;", "set one of LLaMA-Factory's templates to use theirs instead.",
              "warmup_steps below 1 is a ratio of the steps (Transformers >= 5); with an older",
              f"Transformers write warmup_ratio: {t.warmup_ratio:g} instead."]
    text = common.comment_block(lines, notes) + "\n"
    text += common.yaml_blocks([("model", model_block), ("method", method),
                                ("dataset", dataset), ("train", args)])
    info = {TRAIN_NAME: _dataset_info(data.train, data.format, cfg, data)}
    if data.eval:
        info[EVAL_NAME] = _dataset_info(data.eval, data.format, cfg, data)
    return common.Export({out: text, data_dir / "dataset_info.json": common.json_text(info)},
                         notes, data)


def _dataset_info(path: str, fmt: str, cfg, data: common.DataRef) -> dict:
    """One dataset_info.json entry (an absolute file_name is used as it is)."""
    d = cfg.data
    task = data.task_dir is not None
    if fmt == "messages":
        return {"file_name": path, "formatting": "sharegpt",
                "columns": {"messages": "messages" if task else d.messages_column},
                "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                         "assistant_tag": "assistant", "system_tag": "system",
                         "observation_tag": "tool"}}
    if fmt == "prompt_completion":
        return {"file_name": path, "columns": {"prompt": d.prompt_column,
                                               "response": d.completion_column}}
    return {"file_name": path, "columns": {"prompt": "text" if task else d.text_column}}
