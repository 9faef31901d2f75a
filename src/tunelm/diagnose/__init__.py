"""`tunelm diagnose`: a verdict and findings for one training run, from its logged metrics.

Reads a tunelm trial directory or any Hugging Face Trainer run (a `trainer_state.json`, a
checkpoint directory, or an output directory of checkpoints: Transformers, TRL, Axolotl,
LLaMA-Factory). Every finding carries its evidence (numbers and steps), a severity and a concrete
recommendation; the verdict is one of HEALTHY, OVERFIT, UNDERFIT, UNSTABLE, DIVERGED,
NO_PROGRESS (the rule that picks it is in `verdict.py`).

    >>> from tunelm.diagnose import MetricsTable, diagnose_table
    >>> table = MetricsTable.from_rows(
    ...     train=[(s, 3.0 - s / 100) for s in range(10, 130, 10)],
    ...     eval=[(20, 2.0), (40, 1.8), (60, 1.9), (80, 2.0), (100, 2.1), (120, 2.2)])
    >>> d = diagnose_table(table)
    >>> d.verdict, d.findings[0].evidence["turning_step"]
    ('OVERFIT', 40)

`diagnose(path)` does the same for a run on disk.
"""

from __future__ import annotations

from pathlib import Path

from .checks import CHECKS
from .checks.instability import reading
from .finding import INFO, SEVERE, SEVERITIES, WARNING, Diagnosis, Finding
from .load import ACCEPTED, DiagnoseInputError, load_table
from .metrics import EvalRow, MetricsTable, TrainRow
from .render import RENDERERS, to_json, to_text
from .verdict import VERDICTS, decide

__all__ = [
    "ACCEPTED", "CHECKS", "DiagnoseInputError", "Diagnosis", "EvalRow", "Finding", "INFO",
    "MetricsTable", "RENDERERS", "SEVERE", "SEVERITIES", "TrainRow", "VERDICTS", "WARNING",
    "diagnose", "diagnose_table", "load_table", "to_json", "to_text",
]


def diagnose_table(table: MetricsTable) -> Diagnosis:
    """Run every check over an in-memory table and decide the verdict."""
    findings = [f for check in CHECKS if (f := check(table)) is not None]
    verdict, findings = decide(findings)
    return Diagnosis(verdict, findings, run={**table.summary(), "reading": reading(table)})


def diagnose(path: str | Path) -> Diagnosis:
    """Diagnose the run at `path`: a tunelm trial directory, a metrics.jsonl, a trainer_state.json,
    a checkpoint directory, or a Trainer output directory (its latest checkpoint-N).

    Raises DiagnoseInputError (a BadInputError: exit code 2) when the path is missing or is none
    of these.
    """
    return diagnose_table(load_table(path))
