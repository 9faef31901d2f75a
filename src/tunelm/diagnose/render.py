"""Renderers of a Diagnosis: a terminal report and JSON."""

from __future__ import annotations

import json
import textwrap

from .finding import INFO, Diagnosis, json_safe
from .measured import rate_advice_record

KIND_NAMES = {"tunelm": "tunelm trial metrics", "trainer": "Trainer state",
              "memory": "metrics table"}
WIDTH = 100


def _num(x, spec=".4g") -> str:
    return "n/a" if x is None else format(x, spec)


def _evidence(evidence: dict) -> str:
    parts = []
    for key, value in json_safe(evidence).items():
        if isinstance(value, list):
            value = json.dumps(value, separators=(",", ":"))
            value = value if len(value) <= 120 else value[:117] + "..."
        parts.append(f"{key}={value}")
    return ", ".join(parts)


def verdict_line(d: Diagnosis) -> str:
    """'verdict: UNSTABLE (severe), from 18 means of 10 steps over 3 epochs (batch noise
    expected +-0.031 per mean, batch 4) and 11 evaluations'."""
    deciding = next((f for f in d.findings if f.verdict == d.verdict and f.severity != INFO),
                    None)
    head = f"verdict: {d.verdict}" + (f" ({deciding.severity})" if deciding else "")
    r, run = d.run.get("reading") or {}, d.run
    if not r:
        return head
    k = r["steps_per_point"]
    epochs = f" over {r['epochs_seen']} epochs" if r["epochs_seen"] > 1 else ""
    noise = (f"batch noise not separable: one log per {k} steps or more"
             if not r["noise_per_point"] else
             f"batch noise expected +-{r['noise_per_point']:.2g} per mean")
    batch = f", batch {run['effective_batch']}" if run.get("effective_batch") else ""
    evals = f"{run.get('eval_points', 0)} evaluations"
    if not r["points"]:
        return f"{head}, from no finite train loss and {evals}"
    means = "mean" if r["points"] == 1 else "means"
    return (f"{head}, from {r['points']} {means} of {k} step{'s' if k > 1 else ''}{epochs} "
            f"({noise}{batch}) and {evals}")


def rate_line(d: Diagnosis) -> str | None:
    """'rate advice: lower (UNSTABLE_LOSS); on the advice benchmark ...' or None."""
    f = next((f for f in d.findings if f.lr_change and f.severity != INFO), None)
    if f is None:
        return None
    way = "raise" if f.lr_change > 1 else "lower"
    return f"rate advice: {way} ({f.code}); {rate_advice_record(f.code)}"


def to_text(d: Diagnosis) -> str:
    run = d.run
    lines = [verdict_line(d)]
    rate = rate_line(d)
    lines += textwrap.wrap(rate, WIDTH, subsequent_indent="         ") if rate else []
    lines += [
        f"run:     {run.get('path')} ({KIND_NAMES.get(run.get('kind'), run.get('kind'))}; "
        f"{run.get('steps')} steps, {run.get('train_points')} train logs, "
        f"{run.get('eval_points')} evaluations)",
        f"         train loss {_num(run.get('first_train_loss'))} -> "
        f"{_num(run.get('last_train_loss'))}; " + (
            f"best eval loss {_num(run.get('best_eval_loss'))} at step "
            f"{run.get('best_eval_step')}, last {_num(run.get('last_eval_loss'))} at step "
            f"{run.get('last_eval_step')}" if run.get("best_eval_loss") is not None
            else "no finite eval loss"),
    ]
    if not d.findings:
        lines += ["", "no findings: the curves look healthy."]
    for i, f in enumerate(d.findings, 1):
        lines.append("")
        head = f"{i}. [{f.severity}] {f.code}: "
        lines += textwrap.wrap(head + f.message, WIDTH, subsequent_indent="   ")
        lines += textwrap.wrap("evidence: " + _evidence(f.evidence), WIDTH,
                               initial_indent="   ", subsequent_indent="     ")
        lines += textwrap.wrap("fix: " + f.recommendation, WIDTH, initial_indent="   ",
                               subsequent_indent="        ")
    return "\n".join(lines) + "\n"


def to_json(d: Diagnosis) -> str:
    return json.dumps(d.as_dict(), indent=2) + "\n"


RENDERERS = {"text": to_text, "json": to_json}
