"""Transformers: `TrainingArguments` as JSON, a PEFT `LoraConfig` JSON beside it, and a notes
file with what neither holds (model, data, early stopping, quantization).

Both JSON files hold keyword arguments only, so each target loads them with its own parser:

    TrainingArguments(**json.load(open("training_args.json")))
    HfArgumentParser(TrainingArguments).parse_json_file("training_args.json")
    LoraConfig(**json.load(open("training_args.lora.json")))
"""

from __future__ import annotations

from pathlib import Path

from .. import hf_args
from . import common
from .source import Source

DEFAULT_NAME = "training_args.json"


def build(src: Source, out: Path) -> common.Export:
    cfg = src.cfg
    model, notes = common.model_ref(cfg)
    data, data_notes = common.data_ref(cfg, out)
    args, arg_notes = common.training_args(src, f"outputs/{out.stem}")
    notes += data_notes + arg_notes + common.common_notes(cfg)
    lora = common.peft_lora(cfg)
    files = {out: common.json_text(args)}
    lora_file = out.with_name(f"{out.stem}.lora.json")
    if lora is not None:
        files[lora_file] = common.json_text(lora)
    notes_file = out.with_name(f"{out.stem}.notes.md")
    files[notes_file] = _notes_md(src, out, model, data, lora_file if lora else None, notes)
    return common.Export(files, notes, data)


def _notes_md(src: Source, out: Path, model: str, data: common.DataRef, lora_file,
              notes: list[str]) -> str:
    cfg = src.cfg
    d, m = cfg.data, cfg.model
    stopping = common.early_stopping(cfg)
    lines = [
        f"# {out.name}: what TrainingArguments does not hold",
        "",
        f"Exported by `tunelm export` from {src.origin}.",
        "",
        f"- **Model:** `{model}`" + (f" (tunelm: `{m.name}`)" if model != m.name else "")
        + f", method {m.method}.",
        f"- **LoRA:** `LoraConfig(**json.load(open('{lora_file.name}')))`, then "
        "`peft.get_peft_model(model, lora)`." if lora_file else
        "- **Full fine-tuning:** no adapter; every weight trains.",
    ]
    if m.method == "qlora":
        q = ", ".join(f"{k}={v!r}" for k, v in hf_args.QLORA_QUANTIZATION.items())
        lines.append(f"- **QLoRA:** load the model with `quantization_config=BitsAndBytesConfig"
                     f"({q}, bnb_4bit_compute_dtype=torch.bfloat16)`, then "
                     "`peft.prepare_model_for_kbit_training(model)`.")
    if stopping:
        kw = ", ".join(f"{k}={v!r}" for k, v in stopping.items())
        lines.append(f"- **Early stopping:** `Trainer(..., callbacks=[EarlyStoppingCallback({kw})])`"
                     " (the arguments already load the best checkpoint by eval loss).")
    evals = data.eval or f"a seeded {d.eval_fraction:.0%} hold-out of the training data"
    lines += [
        f"- **Data:** train `{data.train}`, eval {('`' + evals + '`') if data.eval else evals}, "
        f"format {data.format}; tokenize to at most {d.max_length} tokens"
        + (", loss on the completions (assistant turns) only" if d.completion_only
           and data.format != "text" else ", loss on every token")
        + (", packed into sequences of that length" if d.packing else "") + ".",
    ]
    if notes:
        lines += ["", "## Not carried over, or changed on the way", ""]
        lines += [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"
