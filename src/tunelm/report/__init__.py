"""`tunelm report`: one self-contained HTML file and the same plots as PNGs, for a study.

    from tunelm.report import write_report
    path = write_report("runs/contracts")        # runs/contracts/report.html, plots/*.png

Compute first (`data.collect` -> `ReportData`), render second (`charts`, `html`, `png`).
"""

from .data import ReportData, collect
from .write import write_report

__all__ = ["ReportData", "collect", "write_report"]
