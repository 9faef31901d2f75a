"""Logging set-up: a console handler that does not break progress bars, and a per-trial file.

Step lines (`step 120 | loss 1.2345 | lr 2.0e-04 | grad_norm 0.81 | tok/s 287`) always go to the
trial's `train.log`; on the console they appear with `--verbose` only, the bar shows the rest.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
STEP_LOGGER = "tunelm.train"


class _TqdmHandler(logging.StreamHandler):
    def emit(self, record):
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record))
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


class _NoSteps(logging.Filter):
    def filter(self, record):
        return not (record.name == STEP_LOGGER and record.getMessage().startswith("step "))


def setup_console(verbose: bool = False, quiet: bool = False) -> None:
    root = logging.getLogger("tunelm")
    for h in list(root.handlers):
        if getattr(h, "_tunelm_console", False):
            root.removeHandler(h)
    handler = _TqdmHandler()
    handler._tunelm_console = True
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.setLevel(logging.WARNING if quiet else logging.INFO)
    if not verbose:
        handler.addFilter(_NoSteps())
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    root.propagate = False


@contextlib.contextmanager
def trial_log(path: Path):
    """Everything tunelm logs while the block runs also goes to `path`."""
    root = logging.getLogger("tunelm")
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.setLevel(logging.INFO)
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()
