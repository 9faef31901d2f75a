"""Metrics of overlap with the reference, through the libraries people report them with:
ROUGE-L F1 (`rouge-score`, Google's reference implementation) and chrF (`sacrebleu`).

Both libraries are optional (`pip install 'tunelm[metrics]'`); they are imported here, when a
score is asked for, and the config check has already said which one is missing."""

from __future__ import annotations


def rouge_scores(predictions: list[str], golds: list[str]) -> dict:
    """`rougeL`: the mean over examples of ROUGE-L F1 (longest common subsequence of words,
    Porter-stemmed), in [0, 1]."""
    from rouge_score import rouge_scorer

    n = len(golds)
    if n == 0:
        return {"rougeL": None, "n": 0}
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    total = sum(scorer.score(g, p)["rougeL"].fmeasure for p, g in zip(predictions, golds))
    return {"rougeL": total / n, "n": n}


def chrf_scores(predictions: list[str], golds: list[str]) -> dict:
    """`chrf`: sacrebleu's corpus-level chrF (character 6-grams, beta 2), on its own 0-100
    scale, as papers report it."""
    from sacrebleu.metrics import CHRF

    n = len(golds)
    if n == 0:
        return {"chrf": None, "n": 0}
    return {"chrf": float(CHRF().corpus_score(list(predictions), [list(golds)]).score), "n": n}
