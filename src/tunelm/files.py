"""Atomic writes: a reader (another worker, a crashed run's successor) never sees half a file."""

from __future__ import annotations

import json
from pathlib import Path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write `text` to a temporary file beside `path`, then rename it over `path`."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def write_jsonl_atomic(path: str | Path, rows) -> Path:
    """One JSON object per line, atomically."""
    return write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
