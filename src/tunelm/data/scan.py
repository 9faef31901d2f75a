"""Reading JSONL, JSON and CSV line by line in Python: exact file:line positions for malformed
input, and rows of mixed types that an Arrow table cannot hold (each row kept as JSON text)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from ..errors import DataError

TEXT_SUFFIXES = (".jsonl", ".json", ".csv")


def scan(f: Path) -> Iterator[tuple[dict, str]]:
    """(object, "file:line") for every record of one JSONL, JSON or CSV file; DataError on the
    first malformed line, or when the file holds no record."""
    reader = {".csv": _csv, ".json": _json}.get(f.suffix.lower(), _jsonl)
    empty = True
    for item in reader(f):
        empty = False
        yield item
    if empty:
        raise DataError(f"data file {f} is empty: it holds no examples")


def _csv(f: Path):
    try:
        with open(f, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames:
                raise DataError(f"{f}: empty CSV file (no header row)")
            for i, row in enumerate(reader, start=2):
                yield dict(row), f"{f}:{i}"
    except UnicodeDecodeError as exc:
        raise DataError(f"{f}: not UTF-8 text ({exc})") from None


def _json(f: Path):
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{f}: not valid JSON ({exc})") from None
    if not isinstance(data, list):
        raise DataError(f"{f}: a .json data file must hold a list of objects")
    for i, obj in enumerate(data):
        if not isinstance(obj, dict):
            raise DataError(f"{f}: item {i} is {type(obj).__name__}, expected an object")
        yield obj, f"{f}[{i}]"


def _jsonl(f: Path):
    try:
        fh = open(f, encoding="utf-8")
        with fh:
            for i, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{f}:{i}: line is not valid JSON ({exc.msg})") from None
                if not isinstance(obj, dict):
                    raise DataError(f"{f}:{i}: expected a JSON object, got {type(obj).__name__}")
                yield obj, f"{f}:{i}"
    except UnicodeDecodeError as exc:
        raise DataError(f"{f}: not UTF-8 text ({exc})") from None


def locations(f: Path) -> list[str] | None:
    """Where each row of a JSONL or CSV file is ("file:line"), in one pass without parsing the
    JSON; None for other files (their rows are numbered as they are)."""
    suffix = f.suffix.lower()
    if suffix == ".jsonl":
        with open(f, encoding="utf-8", errors="replace") as fh:
            return [f"{f}:{i}" for i, line in enumerate(fh, start=1) if line.strip()]
    if suffix == ".csv":
        out = []
        with open(f, newline="", encoding="utf-8", errors="replace") as fh:
            reader = csv.reader(fh)
            next(reader, None)
            start = reader.line_num + 1
            for _row in reader:
                out.append(f"{f}:{start}")
                start = reader.line_num + 1
        return out
    return None


def where_in_file(f: Path, row: int, lines: list[str] | None) -> str:
    """Where row `row` (0-based, as an Arrow table numbers it) of a file is, for messages."""
    if lines is not None and row < len(lines):
        return lines[row]
    if f.suffix.lower() == ".json":
        return f"{f}[{row}]"
    return f"{f} row {row}"
