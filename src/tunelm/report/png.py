"""The report's charts as PNG files, for people in a terminal (or a ticket, or a chat)."""

from __future__ import annotations

from pathlib import Path

from .charts import Chart


def write_pngs(charts: list[Chart], folder: str | Path, dpi: int = 120) -> list[Path]:
    """`folder/<chart id>.png` for every chart that has a figure; returns the paths written.
    A chart left over from an earlier report that now has only a note is removed."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for chart in charts:
        path = folder / f"{chart.id}.png"
        if chart.figure is None:
            path.unlink(missing_ok=True)
            continue
        tmp = path.with_name(path.name + ".tmp")
        chart.figure.savefig(tmp, format="png", dpi=dpi)
        tmp.replace(path)
        written.append(path)
    return written
