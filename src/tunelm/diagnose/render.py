"""Renderers of a Diagnosis: a terminal report and JSON."""

from __future__ import annotations

import json
import textwrap

from .finding import Diagnosis, json_safe

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


def to_text(d: Diagnosis) -> str:
    run = d.run
    lines = [
        f"verdict: {d.verdict}",
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
