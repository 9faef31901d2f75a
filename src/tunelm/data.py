"""Datasets: read JSONL/CSV files, apply the chat template, mask prompts, truncate, split, pack.

Three record shapes are accepted, detected per file (or forced with `data.format`):

- chat: `{"messages": [{"role": "user", "content": ...}, {"role": "assistant", ...}]}`
- prompt/completion: `{"prompt": ..., "completion": ...}`
- plain text: `{"text": ...}`

Malformed input raises DataError naming the file, the line and the field, so the CLI exits with 2.
"""

from __future__ import annotations

import csv
import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DataError

log = logging.getLogger(__name__)

IGNORE = -100
ROLES = ("system", "user", "assistant", "tool")


@dataclass
class Record:
    """One example as read, with where it came from (for error messages)."""

    data: dict
    where: str  # "file.jsonl:12"


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]


@dataclass
class DatasetStats:
    examples: int = 0
    truncated: int = 0
    dropped_no_labels: int = 0
    tokens: int = 0
    label_tokens: int = 0
    max_tokens: int = 0
    format: str = ""
    files: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


# ----------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------


def _files(path: str) -> list[Path]:
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"data file {path} does not exist")
    if p.is_dir():
        files = sorted(list(p.glob("*.jsonl")) + list(p.glob("*.json")) + list(p.glob("*.csv")))
        if not files:
            raise DataError(f"data directory {path} holds no .jsonl, .json or .csv file")
        return files
    if p.suffix.lower() not in (".jsonl", ".json", ".csv"):
        raise DataError(f"data file {path}: unsupported extension {p.suffix!r}; use .jsonl or .csv")
    return [p]


def read_records(path: str) -> list[Record]:
    """Every record of a file or directory, in order. Raises DataError on malformed lines."""
    records: list[Record] = []
    for f in _files(path):
        before = len(records)
        if f.suffix.lower() == ".csv":
            try:
                with open(f, newline="", encoding="utf-8") as fh:
                    reader = csv.DictReader(fh)
                    if not reader.fieldnames:
                        raise DataError(f"{f}: empty CSV file (no header row)")
                    for i, row in enumerate(reader, start=2):
                        records.append(Record(dict(row), f"{f}:{i}"))
            except UnicodeDecodeError as exc:
                raise DataError(f"{f}: not UTF-8 text ({exc})") from None
        elif f.suffix.lower() == ".json":
            try:
                data = json.loads(f.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise DataError(f"{f}: not valid JSON ({exc})") from None
            if not isinstance(data, list):
                raise DataError(f"{f}: a .json data file must hold a list of objects")
            for i, obj in enumerate(data):
                if not isinstance(obj, dict):
                    raise DataError(f"{f}: item {i} is {type(obj).__name__}, expected an object")
                records.append(Record(obj, f"{f}[{i}]"))
        else:
            try:
                lines = f.read_text(encoding="utf-8").splitlines()
            except UnicodeDecodeError as exc:
                raise DataError(f"{f}: not UTF-8 text ({exc})") from None
            for i, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{f}:{i}: line is not valid JSON ({exc.msg})") from None
                if not isinstance(obj, dict):
                    raise DataError(f"{f}:{i}: expected a JSON object, got {type(obj).__name__}")
                records.append(Record(obj, f"{f}:{i}"))
        if len(records) == before:
            raise DataError(f"data file {f} is empty: it holds no examples")
    return records


def detect_format(record: Record, cfg) -> str:
    d = record.data
    if cfg.messages_column in d:
        return "messages"
    if cfg.prompt_column in d and cfg.completion_column in d:
        return "prompt_completion"
    if cfg.text_column in d:
        return "text"
    raise DataError(
        f"{record.where}: cannot tell the format from the keys {sorted(d)}; expected "
        f"'{cfg.messages_column}', '{cfg.prompt_column}'+'{cfg.completion_column}' or "
        f"'{cfg.text_column}' (set data.format and the *_column fields)"
    )


def to_messages(record: Record, fmt: str, cfg) -> list[dict] | str:
    """The record as chat messages, or as plain text for the `text` format. Validates fields."""
    d = record.data

    def need_str(key):
        if key not in d:
            raise DataError(f"{record.where}: missing field '{key}' (format {fmt})")
        value = d[key]
        if not isinstance(value, str):
            raise DataError(
                f"{record.where}: field '{key}' must be a string, got {type(value).__name__}"
            )
        return value

    if fmt == "text":
        text = need_str(cfg.text_column)
        if not text.strip():
            raise DataError(f"{record.where}: field '{cfg.text_column}' is empty")
        return text
    if fmt == "prompt_completion":
        prompt, completion = need_str(cfg.prompt_column), need_str(cfg.completion_column)
        if not completion.strip():
            raise DataError(f"{record.where}: field '{cfg.completion_column}' is empty")
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
    msgs = d.get(cfg.messages_column)
    if not isinstance(msgs, list) or not msgs:
        raise DataError(
            f"{record.where}: field '{cfg.messages_column}' must be a non-empty list of "
            "{role, content} objects"
        )
    for j, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise DataError(
                f"{record.where}: {cfg.messages_column}[{j}] must be an object with role in "
                f"{ROLES} and string content, got {m!r}"[:300]
            )
    if not any(m["role"] == "assistant" for m in msgs):
        raise DataError(f"{record.where}: field '{cfg.messages_column}' has no assistant turn")
    return msgs


# ----------------------------------------------------------------------------------------------
# Tokenizing
# ----------------------------------------------------------------------------------------------


def render_chat(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt
    )


def prompt_text(tokenizer, messages: list[dict]) -> str:
    """The text a model is given to answer the last assistant turn (for generation)."""
    return render_chat(tokenizer, messages[:-1], add_generation_prompt=True)


def _assistant_spans(tokenizer, messages: list[dict], full: str) -> list[tuple[int, int]]:
    """Character spans of every assistant turn (its content and end-of-turn marker) in `full`."""
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = render_chat(tokenizer, messages[:i], add_generation_prompt=True)
        through = render_chat(tokenizer, messages[: i + 1])
        if full.startswith(before) and full.startswith(through):
            spans.append((len(before), len(through)))
    if not spans:  # a template that rewrites earlier turns: fall back to the last answer
        before = render_chat(tokenizer, messages[:-1], add_generation_prompt=True)
        spans.append((len(before) if full.startswith(before) else 0, len(full)))
    return spans


def encode(tokenizer, item: list[dict] | str, completion_only: bool) -> Encoded:
    """Token ids and labels of one example; prompt tokens get label -100 if `completion_only`."""
    if isinstance(item, str):
        ids = tokenizer(item, add_special_tokens=True)["input_ids"]
        if tokenizer.eos_token_id is not None and (not ids or ids[-1] != tokenizer.eos_token_id):
            ids = ids + [tokenizer.eos_token_id]
        return Encoded(ids, list(ids))
    full = render_chat(tokenizer, item)
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids = enc["input_ids"]
    if not completion_only:
        return Encoded(ids, list(ids))
    spans = _assistant_spans(tokenizer, item, full)
    labels = [
        tok if any(s <= start < e for s, e in spans) else IGNORE
        for tok, (start, _end) in zip(ids, enc["offset_mapping"])
    ]
    return Encoded(ids, labels)


def ensure_chat_template(tokenizer) -> None:
    """Models without a chat template (base models) get ChatML, as most fine-tuning tools do."""
    if not getattr(tokenizer, "chat_template", None):
        from .models import CHATML_TEMPLATE

        log.warning("the tokenizer has no chat template; using ChatML")
        tokenizer.chat_template = CHATML_TEMPLATE


def encode_records(tokenizer, records: list[Record], cfg, split: str) -> tuple[list[Encoded], DatasetStats]:
    """Encode, truncate at max_length and drop examples left without any label token."""
    ensure_chat_template(tokenizer)
    stats = DatasetStats()
    out: list[Encoded] = []
    fmt = cfg.format
    for rec in records:
        rec_fmt = fmt if fmt != "auto" else detect_format(rec, cfg)
        stats.format = stats.format or rec_fmt
        item = to_messages(rec, rec_fmt, cfg)
        e = encode(tokenizer, item, cfg.completion_only)
        if len(e.input_ids) > cfg.max_length:
            stats.truncated += 1
            e = Encoded(e.input_ids[: cfg.max_length], e.labels[: cfg.max_length])
        if all(label == IGNORE for label in e.labels[1:]):
            stats.dropped_no_labels += 1
            continue
        stats.max_tokens = max(stats.max_tokens, len(e.input_ids))
        stats.tokens += len(e.input_ids)
        stats.label_tokens += sum(label != IGNORE for label in e.labels[1:])
        out.append(e)
    stats.examples = len(out)
    if records and not out:
        raise DataError(
            f"{split} data: every one of the {len(records)} examples lost all its completion "
            f"tokens to truncation at data.max_length={cfg.max_length}; raise data.max_length "
            f"(the longest example needs more) or shorten the prompts"
        )
    if stats.truncated:
        log.warning(
            "%s data: %d of %d examples were longer than data.max_length=%d and were truncated",
            split, stats.truncated, len(records), cfg.max_length,
        )
    return out, stats


def pack(examples: list[Encoded], max_length: int) -> list[Encoded]:
    """Concatenate examples into sequences of at most `max_length` tokens (greedy, in order).

    The first label of every example is masked so no example learns to predict across the
    boundary from the previous one.
    """
    packed: list[Encoded] = []
    ids: list[int] = []
    labels: list[int] = []
    for e in examples:
        if ids and len(ids) + len(e.input_ids) > max_length:
            packed.append(Encoded(ids, labels))
            ids, labels = [], []
        ids = ids + e.input_ids
        labels = labels + [IGNORE] + e.labels[1:]
    if ids:
        packed.append(Encoded(ids, labels))
    return packed


# ----------------------------------------------------------------------------------------------
# The whole pipeline
# ----------------------------------------------------------------------------------------------


@dataclass
class PreparedData:
    train: list[Encoded]
    eval: list[Encoded]
    eval_records: list[Record]  # every raw eval example, for generation-based task metrics
    stats: dict


def resolve_paths(cfg, work_dir: Path) -> tuple[str, str | None]:
    """The train/eval files; a built-in task writes its files under `work_dir` first."""
    if cfg.train is not None:
        return cfg.train, cfg.eval
    from .tasks import contracts, docstrings

    task = {"contracts": contracts, "docstrings": docstrings}[cfg.task]
    paths = task.write_dataset(
        work_dir / "data", cfg.task_train_size, cfg.task_eval_size, seed=cfg.seed
    )
    return paths["train"], cfg.eval or paths["eval"]


def split_records(records: list[Record], fraction: float, seed: int) -> tuple[list[Record], list[Record]]:
    """A seeded hold-out split: at least one example on each side."""
    if len(records) < 2:
        raise DataError(
            f"the training data has {len(records)} example(s); at least 2 are needed to hold out "
            "an eval split (or give data.eval)"
        )
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    n_eval = min(len(records) - 1, max(1, round(fraction * len(records))))
    held = set(order[:n_eval])
    train = [r for i, r in enumerate(records) if i not in held]
    evals = [r for i, r in enumerate(records) if i in held]
    return train, evals


def prepare(tokenizer, cfg, work_dir: Path) -> PreparedData:
    """Read, split, cap, encode and (optionally) pack the data of `cfg` (a DataConfig)."""
    train_path, eval_path = resolve_paths(cfg, work_dir)
    train_records = read_records(train_path)
    if eval_path:
        eval_records = read_records(eval_path)
    else:
        train_records, eval_records = split_records(train_records, cfg.eval_fraction, cfg.seed)
    if cfg.max_examples is not None and len(train_records) > cfg.max_examples:
        rng = random.Random(cfg.seed + 1)
        train_records = rng.sample(train_records, cfg.max_examples)
    loss_records = eval_records
    if cfg.max_eval_examples is not None:
        loss_records = eval_records[: cfg.max_eval_examples]
    train, train_stats = encode_records(tokenizer, train_records, cfg, "train")
    evals, eval_stats = encode_records(tokenizer, loss_records, cfg, "eval")
    if cfg.packing:
        train = pack(train, cfg.max_length)
    train_stats.files = [train_path]
    eval_stats.files = [eval_path or f"{train_path} (held-out {cfg.eval_fraction:.0%})"]
    return PreparedData(
        train, evals, eval_records,
        {"train": train_stats.as_dict(), "eval": eval_stats.as_dict(), "packed": cfg.packing,
         "train_sequences": len(train)},
    )


class Collator:
    """Pads a batch to its longest sequence (to a multiple of 8 for tensor-core friendly shapes)."""

    def __init__(self, pad_id: int, multiple: int = 8):
        self.pad_id = pad_id
        self.multiple = multiple

    def __call__(self, batch):
        import torch

        items = [b if isinstance(b, Encoded) else Encoded(b["input_ids"], b["labels"]) for b in batch]
        n = max(len(e.input_ids) for e in items)
        n = -(-n // self.multiple) * self.multiple
        ids = torch.full((len(items), n), self.pad_id, dtype=torch.long)
        labels = torch.full((len(items), n), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(items), n), dtype=torch.long)
        for i, e in enumerate(items):
            k = len(e.input_ids)
            ids[i, :k] = torch.tensor(e.input_ids)
            labels[i, :k] = torch.tensor(e.labels)
            mask[i, :k] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


class ListDataset:
    """A map-style dataset over encoded examples (what Trainer needs: __len__ and __getitem__)."""

    def __init__(self, items: list[Encoded]):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        e = self.items[i]
        return {"input_ids": e.input_ids, "labels": e.labels}
