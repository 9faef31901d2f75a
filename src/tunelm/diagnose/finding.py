"""What a diagnosis is made of: findings (each with its evidence and a fix) and one verdict."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

INFO, WARNING, SEVERE = "info", "warning", "severe"
SEVERITIES = (INFO, WARNING, SEVERE)  # in rising order


@dataclass(frozen=True)
class Finding:
    """One thing a check saw in the curves.

    `code` names the check (OVERFIT, LOSS_SPIKES, ...); `evidence` holds the numbers and steps
    the message cites; `verdict` is the verdict this finding argues for (None: it informs but
    does not decide, such as missing eval logs); `lr_change` is the factor the recommendation
    applies to the learning rate (1/3: lower it to a third; None: the advice is not a rate).
    """

    code: str
    severity: str
    message: str
    evidence: dict
    recommendation: str
    verdict: str | None = None
    lr_change: float | None = None

    def as_dict(self) -> dict:
        return {
            "code": self.code, "severity": self.severity, "verdict": self.verdict,
            "message": self.message, "evidence": json_safe(self.evidence),
            "recommendation": self.recommendation, "lr_change": json_safe(self.lr_change),
        }


@dataclass
class Diagnosis:
    """The verdict on one run, its findings (most important first) and facts about the run."""

    verdict: str
    findings: list[Finding]
    run: dict = field(default_factory=dict)

    def codes(self) -> list[str]:
        return [f.code for f in self.findings]

    def as_dict(self) -> dict:
        """JSON-ready: non-finite numbers become the strings "nan", "inf", "-inf"."""
        return {"verdict": self.verdict, "run": json_safe(self.run),
                "findings": [f.as_dict() for f in self.findings]}


def json_safe(value):
    """Floats rounded to 6 significant digits; NaN and inf as strings (JSON has neither)."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
