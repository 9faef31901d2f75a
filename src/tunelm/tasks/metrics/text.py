"""The built-in text metrics: exact match of parsed JSON with per-field accuracy (`json`), or
plain string exact match (`exact`). Pure functions, so they are tested without a model."""

from __future__ import annotations

import json
import re

_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")


def parse_json_object(text: str) -> dict | None:
    """The first JSON object in `text` (code fences and trailing chatter tolerated), or None."""
    text = _FENCE.sub("", text.strip())
    start = text.find("{")
    if start < 0:
        return None
    try:
        obj, _ = json.JSONDecoder().raw_decode(text[start:])
    except json.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def json_scores(predictions: list[str], golds: list[str]) -> dict:
    """Exact match of the parsed object, the share that parsed at all, and per-field accuracy."""
    n = len(golds)
    if n == 0:
        return {"exact_match": None, "parse_rate": None, "field_accuracy": {}, "n": 0}
    exact = parsed = 0
    field_hits: dict[str, int] = {}
    for pred, gold in zip(predictions, golds):
        g = parse_json_object(gold) or {}
        p = parse_json_object(pred)
        for key in g:
            field_hits.setdefault(key, 0)
        if p is None:
            continue
        parsed += 1
        exact += p == g
        for key, value in g.items():
            field_hits[key] += p.get(key) == value
    return {
        "exact_match": exact / n,
        "parse_rate": parsed / n,
        "field_accuracy": {k: v / n for k, v in field_hits.items()},
        "n": n,
    }


def exact_scores(predictions: list[str], golds: list[str]) -> dict:
    """Exact match after trimming whitespace."""
    n = len(golds)
    hits = sum(p.strip() == g.strip() for p, g in zip(predictions, golds))
    return {"exact_match": hits / n if n else None, "n": n}
