"""One example as read: its shape (messages, prompt/completion, text) and its validation.

Three record shapes are accepted, detected per record (or forced with `data.format`):

- chat: `{"messages": [{"role": "user", "content": ...}, {"role": "assistant", ...}]}`, with
  optional `system` turns, `content` as a string or a list of text parts
  (`[{"type": "text", "text": ...}]`) and an optional `tools` list for the chat template
- prompt/completion: `{"prompt": ..., "completion": ...}`, with an optional `system` string
- plain text: `{"text": ...}`

Malformed input raises DataError naming where (file and line, or dataset row) and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..errors import DataError

ROLES = ("system", "user", "assistant", "tool")


@dataclass
class Record:
    """One example as read, with where it came from (for error messages)."""

    data: dict
    where: str  # "file.jsonl:12", "file.parquet row 3", "org/name (train) row 7"


def _present(d: dict, key: str) -> bool:
    """A key counts only with a value: Arrow tables give every row every column, None if absent."""
    return d.get(key) is not None


def detect_format(record: Record, cfg) -> str:
    d = record.data
    if _present(d, cfg.messages_column):
        return "messages"
    if _present(d, cfg.prompt_column) and _present(d, cfg.completion_column):
        return "prompt_completion"
    if _present(d, cfg.text_column):
        return "text"
    keys = sorted(k for k in d if d[k] is not None)
    raise DataError(
        f"{record.where}: cannot tell the format from the keys {keys}; expected "
        f"'{cfg.messages_column}', '{cfg.prompt_column}'+'{cfg.completion_column}' or "
        f"'{cfg.text_column}' (set data.format and the *_column fields)"
    )


def drop_none(value):
    """`value` without None entries in its dicts: Arrow fills the keys one row lacks with None,
    and a chat template would print them."""
    if isinstance(value, dict):
        return {k: drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_none(v) for v in value]
    return value


def _text_of(content, where: str, field: str) -> str | None:
    """A message's content as one string: a string, or the text parts of a list joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content:
        texts = []
        for k, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(
                part.get("text"), str
            ):
                raise DataError(
                    f"{where}: {field}.content[{k}] must be a text part "
                    f'{{"type": "text", "text": ...}} (images and audio are not supported), '
                    f"got {part!r}"[:300]
                )
            texts.append(part["text"])
        return "".join(texts)
    return None


def _message(m, j: int, where: str, column: str) -> dict:
    field = f"{column}[{j}]"
    ok = isinstance(m, dict) and m.get("role") in ROLES
    content = _text_of(m.get("content"), where, field) if ok else None
    if ok and content is None and m.get("content") is None and m.get("tool_calls"):
        content = ""  # an assistant turn that only calls tools
    if content is None:
        raise DataError(
            f"{where}: {field} must be an object with role in {ROLES} and string content "
            f"(or a list of text parts), got {m!r}"[:300]
        )
    return {**drop_none(m), "content": content}


def to_messages(record: Record, fmt: str, cfg) -> list[dict] | str:
    """The record as chat messages, or as plain text for the `text` format. Validates fields."""
    d = record.data

    def need_str(key):
        if d.get(key) is None:
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
        system = [{"role": "system", "content": need_str("system")}] if _present(d, "system") else []
        return system + [{"role": "user", "content": prompt},
                         {"role": "assistant", "content": completion}]
    msgs = d.get(cfg.messages_column)
    if not isinstance(msgs, list) or not msgs:
        raise DataError(
            f"{record.where}: field '{cfg.messages_column}' must be a non-empty list of "
            "{role, content} objects"
        )
    msgs = [_message(m, j, record.where, cfg.messages_column) for j, m in enumerate(msgs)]
    if not any(m["role"] == "assistant" for m in msgs):
        raise DataError(f"{record.where}: field '{cfg.messages_column}' has no assistant turn")
    return msgs


def tools_of(record: Record) -> list[dict] | None:
    """The record's `tools` (function schemas for the chat template), validated, or None."""
    tools = record.data.get("tools")
    if tools is None:
        return None
    if isinstance(tools, str):  # some datasets keep the schemas as JSON text
        try:
            tools = json.loads(tools)
        except json.JSONDecodeError as exc:
            raise DataError(f"{record.where}: field 'tools' is text but not JSON ({exc.msg})") from None
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise DataError(f"{record.where}: field 'tools' must be a list of objects (function "
                        f"schemas), got {type(tools).__name__}")
    return drop_none(tools) or None
