"""TRL: a runnable script (`python train_trl.py` runs `SFTTrainer` with the exported `SFTConfig`
and PEFT `LoraConfig`) and a JSON with the same `sft_config` and `lora_config` objects.

`SFTConfig` is a `TrainingArguments` subclass, so its training arguments are the runner's own
(common.training_args); the SFT fields carry the data settings. `SFTConfig` changes four
Transformers defaults (gradient checkpointing and bf16 on, 10-step logging, its learning rate),
so every one of those is written out explicitly.
"""

from __future__ import annotations

from pathlib import Path

from .. import hf_args
from . import common
from .source import Source

DEFAULT_NAME = "train_trl.py"

_CONVERT = {
    # messages + completion-only: the conversation up to its last assistant turn is the prompt
    ("messages", True): '''
def to_trl(example):
    """A conversation as TRL's conversational prompt/completion, split before the last
    assistant turn, so that completion_only_loss trains on that turn."""
    messages = example[MESSAGES]
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return {"prompt": messages[:last], "completion": messages[last:]}
''',
    ("messages", False): '''
def to_trl(example):
    """A conversation, loss on every token."""
    return {"messages": example[MESSAGES]}
''',
    ("prompt_completion", True): '''
def to_trl(example):
    """A prompt/completion pair as one user and one assistant turn (as tunelm renders it)."""
    return {"prompt": [{"role": "user", "content": example[PROMPT]}],
            "completion": [{"role": "assistant", "content": example[COMPLETION]}]}
''',
    ("text", True): '''
def to_trl(example):
    """Plain text, loss on every token."""
    return {"text": example[TEXT]}
''',
}
_CONVERT[("prompt_completion", False)] = _CONVERT[("prompt_completion", True)]
_CONVERT[("text", False)] = _CONVERT[("text", True)]

_MAIN = '''
def main():
    files = {"train": DATA["train"]}
    if DATA["eval"]:
        files["eval"] = DATA["eval"]
    data = load_dataset(DATA["kind"], data_files=files)
    train = data["train"]
    if "eval" in data:
        evals = data["eval"]
    else:  # a seeded hold-out, as tunelm makes when there is no eval file
        split = train.train_test_split(test_size=DATA["eval_fraction"], seed=DATA["seed"])
        train, evals = split["train"], split["test"]
    if DATA["max_examples"] is not None and len(train) > DATA["max_examples"]:
        train = train.shuffle(seed=DATA["seed"] + 1).select(range(DATA["max_examples"]))
    if DATA["max_eval_examples"] is not None:
        evals = evals.select(range(min(DATA["max_eval_examples"], len(evals))))
    train = train.map(to_trl, remove_columns=train.column_names)
    evals = evals.map(to_trl, remove_columns=evals.column_names)

    args = dict(SFT_CONFIG)
    if QUANTIZATION:
        import torch
        from transformers import BitsAndBytesConfig

        compute = torch.float16 if args.get("fp16") else torch.bfloat16
        args["model_init_kwargs"] = {**args.get("model_init_kwargs", {}),
                                     "quantization_config": BitsAndBytesConfig(
                                         **QUANTIZATION, bnb_4bit_compute_dtype=compute)}
    trainer = SFTTrainer(
        model=MODEL,
        args=SFTConfig(**args),
        train_dataset=train,
        eval_dataset=evals,
        peft_config=LoraConfig(**LORA_CONFIG) if LORA_CONFIG else None,
        callbacks=[EarlyStoppingCallback(**EARLY_STOPPING)] if EARLY_STOPPING else None,
    )
    trainer.train()
    trainer.save_model()  # the best checkpoint by eval loss (load_best_model_at_end)
    print("best eval loss", trainer.state.best_metric, "saved to", args["output_dir"])


if __name__ == "__main__":
    main()
'''


def build(src: Source, out: Path) -> common.Export:
    cfg = src.cfg
    model, notes = common.model_ref(cfg)
    data, data_notes = common.data_ref(cfg, out)
    args, arg_notes = common.training_args(src, f"outputs/{out.stem}")
    notes += data_notes + arg_notes + common.common_notes(cfg) + _notes(cfg, data)
    sft = {**args, **_sft_fields(cfg, data, args)}
    lora = common.peft_lora(cfg)
    quant = dict(hf_args.QLORA_QUANTIZATION) if cfg.model.method == "qlora" else None
    stopping = common.early_stopping(cfg)
    d = cfg.data
    data_block = {"train": data.train, "eval": data.eval, "kind": data.kind,
                  "format": data.format, "eval_fraction": d.eval_fraction, "seed": d.seed,
                  "max_examples": d.max_examples, "max_eval_examples": d.max_eval_examples}
    as_json = {"model": model, "sft_config": sft, "lora_config": lora, "quantization": quant,
               "early_stopping": stopping, "data": data_block, "source": src.origin,
               "notes": notes}
    script = _script(src, out, model, data, data_block, sft, lora, quant, stopping, notes)
    return common.Export({out: script, out.with_suffix(".json"): common.json_text(as_json)},
                         notes, data)


def _sft_fields(cfg, data: common.DataRef, args: dict) -> dict:
    d, m = cfg.data, cfg.model
    dtype = "float32" if m.method == "full" or not (args["bf16"] or args["fp16"]) else (
        "bfloat16" if args["bf16"] else "float16")
    init = {"dtype": dtype}
    if m.revision:
        init["revision"] = m.revision
    out = {"max_length": d.max_length, "packing": d.packing,
           "completion_only_loss": d.completion_only and data.format != "text",
           "model_init_kwargs": init, "trust_remote_code": m.trust_remote_code}
    if data.format == "text":
        out["dataset_text_field"] = "text"
    return out


def _notes(cfg, data: common.DataRef) -> list[str]:
    d = cfg.data
    notes = []
    if data.format == "messages" and d.completion_only:
        notes.append("data.completion_only with chat messages: tunelm trains on every assistant "
                     "turn; the script trains on the last one (the conversation before it is the "
                     "prompt), the same for single-turn data. For multi-turn data use "
                     "assistant_only_loss=True with a chat template that has {% generation %} "
                     "markers")
    if d.packing:
        notes.append("data.packing: TRL packs with its own strategy (best-fit decreasing), "
                     "tunelm concatenates in order")
    if d.eval is None and d.train is not None:
        notes.append(f"data.eval_fraction {d.eval_fraction:g}: the script holds out a seeded "
                     "split of its own, not the examples tunelm held out")
    if d.max_examples is not None:
        notes.append(f"data.max_examples {d.max_examples}: the script samples its own subset")
    return notes


def _script(src, out, model, data, data_block, sft, lora, quant, stopping, notes) -> str:
    cfg, d = src.cfg, src.cfg.data
    task = data.task_dir is not None  # a built-in task's files use the default keys
    names = {
        "messages": {"MESSAGES": "messages" if task else d.messages_column},
        "prompt_completion": {"PROMPT": d.prompt_column, "COMPLETION": d.completion_column},
        "text": {"TEXT": "text" if task else d.text_column},
    }[data.format]
    lines = common.header(src, f"python {out.name}", "Fine-tune with TRL's SFTTrainer")
    lines += ["", "Needs: pip install trl peft datasets (and bitsandbytes for 4-bit QLoRA).",
              f"The model: {model}" + (f" (tunelm: {cfg.model.name})" if model != cfg.model.name
                                       else "")]
    text = common.comment_block(lines, notes)
    text += ("\nfrom datasets import load_dataset\nfrom peft import LoraConfig\n"
             "from transformers import EarlyStoppingCallback\nfrom trl import SFTConfig, "
             "SFTTrainer\n\n")
    text += f"MODEL = {model!r}\n"
    for name, value in names.items():
        text += f"{name} = {value!r}\n"
    text += f"DATA = {common.py_literal(data_block)}\n"
    text += f"SFT_CONFIG = {common.py_literal(sft)}\n"
    text += f"LORA_CONFIG = {common.py_literal(lora)}  # None: full fine-tuning\n"
    text += f"QUANTIZATION = {common.py_literal(quant)}  # 4-bit NF4 for QLoRA\n"
    text += f"EARLY_STOPPING = {common.py_literal(stopping)}\n\n"
    text += _CONVERT[(data.format, d.completion_only)]
    text += "\n" + _MAIN
    return text
