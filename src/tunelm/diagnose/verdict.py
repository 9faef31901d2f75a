"""One verdict from many findings.

The rule, in order:
1. Any DIVERGED finding makes the verdict DIVERGED. Findings that argue for UNDERFIT,
   NO_PROGRESS or OVERFIT are then dropped: "train longer", "no progress" or "keep the rate and
   the best checkpoint" says nothing useful about a run that blew up (on the advice benchmark's
   licenses grid a severe OVERFIT sat beside the divergence of the 10x rate, telling the user to
   keep the rate that blew up).
2. Otherwise the verdict is that of the most severe finding that argues for one (severe before
   warning; info findings never decide). Between equally severe findings the order is
   UNSTABLE, OVERFIT, NO_PROGRESS, UNDERFIT: an unstable run's other symptoms often follow from
   its instability, and a run that turned is past the point where "no progress" or "train
   longer" would help. So a severe OVERFIT beats a warning UNSTABLE, and a warning UNSTABLE
   beats a warning OVERFIT.
3. HEALTHY when no warning or severe finding argues for a verdict.
Findings are returned most important first: by severity, then by the order above.
"""

from __future__ import annotations

from .finding import INFO, SEVERITIES, Finding

VERDICTS = ("HEALTHY", "OVERFIT", "UNDERFIT", "UNSTABLE", "DIVERGED", "NO_PROGRESS")
PRIORITY = ("DIVERGED", "UNSTABLE", "OVERFIT", "NO_PROGRESS", "UNDERFIT")
MOOT_AFTER_DIVERGENCE = ("UNDERFIT", "NO_PROGRESS", "OVERFIT")


def _rank(f: Finding) -> tuple[int, int]:
    order = PRIORITY.index(f.verdict) if f.verdict in PRIORITY else len(PRIORITY)
    return -SEVERITIES.index(f.severity), order


def decide(findings: list[Finding]) -> tuple[str, list[Finding]]:
    """(verdict, the findings kept, most important first)."""
    if any(f.verdict == "DIVERGED" for f in findings):
        findings = [f for f in findings if f.verdict not in MOOT_AFTER_DIVERGENCE]
    ordered = sorted(findings, key=_rank)  # stable: ties keep the checks' order
    if any(f.verdict == "DIVERGED" for f in ordered):
        return "DIVERGED", ordered
    deciding = [f for f in ordered if f.verdict and f.severity != INFO]
    return (deciding[0].verdict if deciding else "HEALTHY"), ordered
