"""What `tunelm lr-find` prints: the suggestions, what the measurement on the recorded grids makes
of them, and which rate a user should trust, from that measurement. Pure: a record in, text out.

    print(render_text(record, out_dir))
"""

from __future__ import annotations

from pathlib import Path

from .curve import MEASURED_BAND_RATIOS, RECOMMEND_IN_BAND, calibrate

WHERE = "benchmarks/advice_accuracy.py --lr-find, docs/benchmarks.md"


def trust_line() -> str | None:
    """Which rate to trust, from the measurement (None when nothing was measured)."""
    in_band, grids = RECOMMEND_IN_BAND
    if not grids:
        return None
    if in_band == grids:
        return (f"`tunelm recommend`'s rate: it was in the band of near rates on all {grids} "
                f"measured grids at zero cost; use lr-find's range as the check that a rate is "
                "not beyond the edge")
    return (f"`tunelm recommend`'s rate was in the band of near rates on {in_band} of {grids} "
            "measured grids; where it and this range disagree, try both (a 2-point sweep)")


def render_text(record: dict, out_dir: str | Path) -> str:
    """The lines `tunelm lr-find` prints for a record of `run_lr_find`."""
    out = Path(out_dir)
    steep, valley = record["suggestions"]["steepest"], record["suggestions"]["valley"]
    cal = calibrate(steep["lr"])
    lines = []
    if cal is None:
        lines.append(f"suggested learning rate  {steep['lr']:.2e}  ({steep['how']})")
    elif cal.factor:
        lines += [f"suggested learning rate  {cal.lr:.2e}  (calibrated: lr-find's raw "
                  f"{steep['lr']:.2e} {cal.how}; {WHERE})"]
    else:
        high, capped = cal.high, ""
        if record.get("diverged_at_lr") and record["diverged_at_lr"] < high:
            high, capped = record["diverged_at_lr"], ", capped at the divergence"
        lines += [f"learning-rate range      {cal.low:.2e} to {high:.2e}  (not one number: "
                  f"{cal.how}{capped}; {WHERE})",
                  f"raw suggestion           {steep['lr']:.2e}  ({steep['how']})"]
    lines.append(f"valley rule              {valley['lr']:.2e}  ({valley['how']})")
    trust = trust_line()
    if trust:
        lines.append(f"trust                    {trust}")
    lines.append(f"test                     {record['steps_run']} of {record['steps']} steps, "
                 f"{record['stop_reason']}, {record['wall_seconds']:.0f} s")
    if record.get("diverged_at_lr"):
        lines.append(f"diverged at              {record['diverged_at_lr']:.2e}  (train well "
                     "below it)")
    lines.append(f"written                  {out / 'lr_find.json'}, {out / 'lr_find.png'}")
    return "\n".join(lines)


__all__ = ["MEASURED_BAND_RATIOS", "render_text", "trust_line"]
