"""Tokenizing one example: the chat template, completion-only labels, truncation."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ..errors import DataError
from .records import Record, detect_format, to_messages, tools_of

log = logging.getLogger("tunelm.data")

IGNORE = -100


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


def render_chat(tokenizer, messages: list[dict], add_generation_prompt: bool = False,
                tools: list[dict] | None = None) -> str:
    kwargs = {"tools": tools} if tools else {}
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt, **kwargs
    )


def prompt_text(tokenizer, messages: list[dict], tools: list[dict] | None = None) -> str:
    """The text a model is given to answer the last assistant turn (for generation)."""
    return render_chat(tokenizer, messages[:-1], add_generation_prompt=True, tools=tools)


def _assistant_spans(tokenizer, messages: list[dict], full: str, tools) -> list[tuple[int, int]]:
    """Character spans of every assistant turn (its content and end-of-turn marker) in `full`."""
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = render_chat(tokenizer, messages[:i], add_generation_prompt=True, tools=tools)
        # the last turn renders as the whole conversation does: one template call saved
        last = i == len(messages) - 1
        through = full if last else render_chat(tokenizer, messages[: i + 1], tools=tools)
        if full.startswith(before) and full.startswith(through):
            spans.append((len(before), len(through)))
    if not spans:  # a template that rewrites earlier turns: fall back to the last answer
        before = render_chat(tokenizer, messages[:-1], add_generation_prompt=True, tools=tools)
        spans.append((len(before) if full.startswith(before) else 0, len(full)))
    return spans


def encode(tokenizer, item: list[dict] | str, completion_only: bool,
           tools: list[dict] | None = None) -> Encoded:
    """Token ids and labels of one example; prompt tokens get label -100 if `completion_only`.
    `tools` (function schemas) are passed to the chat template."""
    if isinstance(item, str):
        ids = tokenizer(item, add_special_tokens=True)["input_ids"]
        if tokenizer.eos_token_id is not None and (not ids or ids[-1] != tokenizer.eos_token_id):
            ids = ids + [tokenizer.eos_token_id]
        return Encoded(ids, list(ids))
    full = render_chat(tokenizer, item, tools=tools)
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids = enc["input_ids"]
    if not completion_only:
        return Encoded(ids, list(ids))
    spans = _assistant_spans(tokenizer, item, full, tools)
    labels = [
        tok if any(s <= start < e for s, e in spans) else IGNORE
        for tok, (start, _end) in zip(ids, enc["offset_mapping"])
    ]
    return Encoded(ids, labels)


def encode_record(tokenizer, rec: Record, cfg) -> tuple[str, Encoded]:
    """(format, encoded example) of one record, validated, not yet truncated."""
    fmt = cfg.format if cfg.format != "auto" else detect_format(rec, cfg)
    item = to_messages(rec, fmt, cfg)
    tools = tools_of(rec) if fmt == "messages" else None
    return fmt, encode(tokenizer, item, cfg.completion_only, tools=tools)


def ensure_chat_template(tokenizer) -> None:
    """Models without a chat template (base models) get ChatML, as most fine-tuning tools do."""
    if not getattr(tokenizer, "chat_template", None):
        from ..models import CHATML_TEMPLATE

        log.warning("the tokenizer has no chat template; using ChatML")
        tokenizer.chat_template = CHATML_TEMPLATE


def all_lost_error(split: str, n: int, max_length: int) -> DataError:
    return DataError(
        f"{split} data: every one of the {n} examples lost all its completion "
        f"tokens to truncation at data.max_length={max_length}; raise data.max_length "
        f"(the longest example needs more) or shorten the prompts"
    )


def encode_records(tokenizer, records: list[Record], cfg, split: str) -> tuple[list[Encoded], DatasetStats]:
    """Encode, truncate at max_length and drop examples left without any label token (in
    memory: for a handful of records; `prepare` tokenizes datasets through the cache)."""
    ensure_chat_template(tokenizer)
    stats = DatasetStats()
    out: list[Encoded] = []
    for rec in records:
        rec_fmt, e = encode_record(tokenizer, rec, cfg)
        stats.format = stats.format or rec_fmt
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
        raise all_lost_error(split, len(records), cfg.max_length)
    if stats.truncated:
        log.warning(
            "%s data: %d of %d examples were longer than data.max_length=%d and were truncated",
            split, stats.truncated, len(records), cfg.max_length,
        )
    return out, stats


def pack(examples: list[Encoded], max_length: int) -> list[Encoded]:
    """Concatenate examples into sequences of at most `max_length` tokens (greedy, in order;
    in memory: `prepare` packs datasets with `tokenize.pack_dataset`, which also records where
    each example starts so that none attends to another).

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
