"""What the report reads off one trial: its state and why, its eval-loss curve, its diagnosis, and
its kind (a probe on a share of the steps, a full run, or a generation of population-based
training), with no drawing."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from optuna.trial import FrozenTrial, TrialState

from ..errors import TunelmError
from ..search.pbt import PBT_ATTR

log = logging.getLogger("tunelm.report")

# prune reasons the health guard and the divergence pruner write (runner/callbacks.py, search/)
DIVERGED_PREFIXES = ("diverged", "loss is", "grad_norm is", "eval_loss is")
STATES = ("complete", "pruned", "diverged", "failed", "running")
# a full run trains for all the planned steps; a probe (the protocol's learning-rate, rank and
# warmup stages) for a share of them, so its loss is not comparable with a full run's; a
# generation is one window of a population-based training member
KINDS = ("full", "probe", "generation")


def finite(x) -> float | None:
    """`x` as a float when it is a finite number, else None (a missing or blown-up value)."""
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None


def trial_state(t: FrozenTrial) -> tuple[str, str]:
    """(state, reason): a pruned trial whose loss blew up is `diverged`, not merely `pruned`."""
    reason = str(t.user_attrs.get("prune_reason") or "")
    if t.state == TrialState.FAIL:
        return "failed", reason or str(t.system_attrs.get("fail_reason", "") or "the run crashed")
    if t.state == TrialState.PRUNED:
        return ("diverged" if reason.startswith(DIVERGED_PREFIXES) else "pruned"), reason
    if t.state == TrialState.COMPLETE:
        return "complete", reason
    return "running", reason


def trial_kind(t: FrozenTrial) -> tuple[str, float]:
    """(kind, fraction): one of KINDS and the share of the planned steps the trial ran for (its
    `fraction` user attribute; 1 when it has none)."""
    try:
        fraction = float(t.user_attrs.get("fraction", 1.0))
    except (TypeError, ValueError):
        fraction = 1.0
    if t.user_attrs.get(PBT_ATTR):
        return "generation", fraction
    return ("probe" if fraction < 1 else "full"), fraction


def kind_labels(points) -> dict[str, str]:
    """{kind: its legend label} for the kinds among `points` (anything with `.kind` and
    `.fraction`), in KINDS order: "full run", "probe (20% of steps)"."""
    shares: dict[str, list[float]] = {}
    for p in points:
        shares.setdefault(p.kind, []).append(p.fraction)
    labels = {}
    for kind in (k for k in KINDS if k in shares):
        steps = ", ".join(f"{f:.0%}" for f in sorted(set(shares[kind])))
        labels[kind] = {"full": "full run", "probe": f"probe ({steps} of steps)",
                        "generation": f"PBT generation ({steps} of steps)"}[kind]
    return labels


def eval_curve(t: FrozenTrial) -> tuple[list[int], list[float]]:
    """Finite eval losses by step: the values reported to Optuna, else the trial's metrics.jsonl."""
    points = sorted(t.intermediate_values.items())
    if not points:
        path = Path(t.user_attrs.get("trial_dir") or "/nonexistent") / "metrics.jsonl"
        if path.exists():
            rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
            points = sorted({r["step"]: r["eval_loss"] for r in rows
                             if r.get("eval_loss") is not None}.items())
    points = [(int(s), float(v)) for s, v in points if v is not None and math.isfinite(v)]
    return [s for s, _ in points], [v for _, v in points]


def verdict_of(trial_dir: str | None) -> tuple[str, str]:
    """(verdict, most important finding) of `tunelm diagnose` on a trial directory; ("n/a", "")
    without the directory (another machine's worker wrote it) or without metrics to judge."""
    if not trial_dir or not Path(trial_dir).is_dir():
        return "n/a", ""
    try:
        from ..diagnose import diagnose
    except ImportError:  # an install without the diagnose package
        return "n/a", ""
    try:
        d = diagnose(trial_dir)
    except TunelmError as exc:  # e.g. a crashed trial with no metrics yet
        log.debug("no diagnosis for %s: %s", trial_dir, exc)
        return "n/a", ""
    finding = str(getattr(d.findings[0], "message", d.findings[0])) if d.findings else ""
    return str(d.verdict), finding
