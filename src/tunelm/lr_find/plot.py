"""lr_find.png: the raw and smoothed loss against the rate (log scale), the window the suggestions
looked at, and both suggestions. Drawn from the lr_find.json record and nothing else."""

from __future__ import annotations

from pathlib import Path


def figure(record: dict):
    """A matplotlib Figure of an lr-find record (no pyplot: no global state, no GUI backend)."""
    from matplotlib.figure import Figure

    points = [p for p in record["curve"] if p["loss"] is not None]
    lrs = [p["lr"] for p in points]
    fig = Figure(figsize=(7.5, 4.5), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(lrs, [p["loss"] for p in points], color="#1f77b4", alpha=0.3, lw=1, label="loss")
    ax.plot(lrs, [p["smoothed"] for p in points], color="#1f77b4", lw=2,
            label=f"smoothed (EMA, beta {record['beta']:g})")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    start, end = record["window"]
    if points and 0 <= start < end <= len(points):
        ax.axvspan(lrs[start], lrs[end - 1], color="#dddddd", alpha=0.4, lw=0,
                   label="window of the suggestions")
    steep, valley = record["suggestions"]["steepest"], record["suggestions"]["valley"]
    if steep:
        ax.plot([steep["point_lr"]], [steep["smoothed_loss"]], "v", color="#7f7f7f", ms=8,
                label=f"steepest {steep['point_lr']:.2g}")
        ax.axvline(steep["lr"], color="#2ca02c", lw=1.5, ls="--",
                   label=f"suggestion {steep['lr']:.2g} (steepest / {record['backoff']:g})")
    if valley:
        ax.plot([valley["lr"]], [valley["smoothed_loss"]], "o", color="#ff7f0e", ms=8,
                label=f"valley {valley['lr']:.2g}")
    smoothed = [p["smoothed"] for p in points]
    if smoothed:  # keep the divergence from flattening the interesting part
        low = min(smoothed + [p["loss"] for p in points[:end]])
        ax.set_ylim(low * 0.9 if low > 0 else low - 0.1, max(smoothed[0], min(smoothed) * 4.5))
    ax.set_title(f"lr-find: {record['model']} ({record['method']}), {record['steps_run']} of "
                 f"{record['steps']} steps, {record['stop_reason']}"[:110], fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    return fig


def write_png(record: dict, path: str | Path, dpi: int = 120) -> Path:
    """Write the figure atomically to `path`."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    figure(record).savefig(tmp, format="png", dpi=dpi)
    tmp.replace(path)
    return path
