"""Before a trial writes anything, and after it failed: what a trial reads is checked first
(bad input leaves no directory behind), and a crash mid-run is recorded in its result.json."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..config import Config
from ..data import check_local
from ..errors import ConfigError
from ..files import write_text_atomic
from ..model_checks import check_source
from ..models import resolve_source
from ..tasks.metrics import availability_problems
from .tracking import check_installed

log = logging.getLogger("tunelm.train")


def write_crash(out: Path, exc: Exception) -> None:
    """result.json of a run that crashed (status failed, the error), where its directory is and
    the run did not write its own (a diverged run's result says why it stopped)."""
    if not out.is_dir() or (out / "result.json").exists():  # _start removed a previous one
        return
    try:
        record = {"status": "failed", "stop_reason": "crashed",
                  "error": f"{type(exc).__name__}: {exc}"}
        write_text_atomic(out / "result.json", json.dumps(record, indent=2) + "\n")
    except OSError:  # the disk that failed the run may refuse this too
        log.warning("could not record the crash in %s", out / "result.json")


def check_inputs(cfg: Config, out: Path, loaded=None) -> None:
    """What a trial reads, checked before it writes anything (BadInputError): where its directory
    goes, trackers, local data paths (regular files: a pipe blocks forever), the model source."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"the trial directory {out} is an existing file; give another --out")
    check_sources(cfg, model=loaded is None)


def check_sources(cfg: Config, model: bool = True) -> None:
    """The tracker packages, eval.metric's library or function, the local data paths and (with `model`) the model source of `cfg`:
    what every trial of a study reads, checked before the study's directory is made."""
    check_installed(cfg)  # a missing tracker package
    problems = availability_problems(cfg.eval.metric, cfg.eval.metric_path)
    if problems:  # a metric's missing library, a user function that does not import
        raise ConfigError(problems)
    check_local(cfg.data)
    if model:
        check_source(resolve_source(cfg.model.name), cfg.model.revision)
