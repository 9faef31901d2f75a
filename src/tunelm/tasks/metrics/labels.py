"""`accuracy`: label match for classification, where the answer is a label ("positive",
"spam", "B") and a model may say a little more than the label ("Positive. The review...").

A prediction is correct when, normalised, it equals the normalised reference label, or its first
word does. Normalised: lowercased, whitespace collapsed, quotes and punctuation stripped from both
ends (of the whole text and of the first word). So "Positive." and "positive, clearly" match
"positive"; "not spam" matches "not spam" but not "spam"; "positively" does not match
"positive"."""

from __future__ import annotations

import string

_EDGES = string.punctuation + string.whitespace + "“”‘’«»"


def normalize(text: str) -> str:
    """Lowercased, inner whitespace collapsed, punctuation and quotes stripped from the ends."""
    return " ".join(str(text).lower().split()).strip(_EDGES)


def label_match(prediction: str, label: str) -> bool:
    pred, gold = normalize(prediction), normalize(label)
    if pred == gold:
        return True
    words = pred.split()
    return bool(words) and words[0].strip(_EDGES) == gold


def accuracy_scores(predictions: list[str], golds: list[str]) -> dict:
    """`accuracy`: the share of predictions that match their label (`label_match`)."""
    n = len(golds)
    hits = sum(label_match(p, g) for p, g in zip(predictions, golds))
    return {"accuracy": hits / n if n else None, "n": n}
