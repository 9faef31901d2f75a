"""`write_report`: collect, draw, write. What `tunelm report` and `tunelm demo` call."""

from __future__ import annotations

import logging
from pathlib import Path

from ..files import write_text_atomic

log = logging.getLogger("tunelm.report")


def write_report(study_dir: str | Path | None, *, storage: str | None = None,
                 study_name: str | None = None, out: str | Path | None = None,
                 pngs: bool = True) -> Path:
    """Write the study's report and return the path of the HTML file.

    `out` defaults to `study_dir/report.html` (a directory means `out/report.html`); the PNGs go
    to a `plots/` folder beside it and the best configuration to `best.yaml` beside it.

        >>> write_report("runs/contracts")
        PosixPath('runs/contracts/report.html')

    Raises ConfigError (exit code 2 in the CLI) when `study_dir` (or `storage` + `study_name`)
    holds no study.
    """
    from .charts import build
    from .data import collect
    from .html import render
    from .png import write_pngs

    if out is None:
        if study_dir is None:
            from ..errors import ConfigError

            raise ConfigError("with --storage and no study directory, give --out FILE.html")
        out = Path(study_dir) / "report.html"
    out = Path(out)
    if out.is_dir():
        out = out / "report.html"
    best_yaml = out.parent / "best.yaml"
    data = collect(study_dir, storage=storage, study_name=study_name, best_yaml=best_yaml)
    charts = build(data)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, render(data, charts))
    if data.best is not None:
        write_text_atomic(best_yaml, data.best.config_yaml)
    if pngs:
        written = write_pngs(charts, out.parent / "plots")
        log.debug("%d plots in %s", len(written), out.parent / "plots")
    log.debug("report of study %s (%d trials) written to %s", data.study_name, len(data.rows), out)
    return out
