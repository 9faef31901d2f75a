"""A trial cut off by something that is not its configuration: Ctrl-C, or a full disk.

Ctrl-C during `tunelm search` or `tunelm worker` (`handled()`, installed by those commands):

- the first SIGINT is passed on to the child processes this one waits on (local workers, an
  isolated trial; they run in process groups of their own, so only this process hears the
  terminal's Ctrl-C) and raises KeyboardInterrupt here, inside training where the runner records
  it in result.json;
- the trial's objective marks its Optuna trial (`mark`: state FAIL, user attribute
  `interrupted` with the reason, the reason in result.json) before the exception leaves it;
- the command exits 130 with one line (`Interrupted`); a second SIGINT while that happens kills
  the children and exits 130 at once.

An interrupted trial counts for nothing (`budget.INTERRUPTED_ATTR`): not in a budget and not as
a failed configuration, so rerunning the same command continues the study where it was. A trial
stopped by a full disk (`is_disk_full`) is marked the same way and ends the study (exit 1,
`errors.DiskFullError`).

SIGTERM (preemption) is not handled here.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import signal
import subprocess
import threading
from pathlib import Path

from ..files import write_text_atomic
from .budget import INTERRUPTED_ATTR
from .drivers import SQLITE_FULL

log = logging.getLogger("tunelm.search")
BY_THE_USER = "interrupted by the user (Ctrl-C)"
EXIT_CODE = 130
CHILD_GRACE_SECONDS = 60.0  # how long the children get to record their trials
FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)

_children: list[subprocess.Popen] = []
_signals = [0]  # SIGINTs received since `handled()` was entered
_marked: set[int] = set()  # trials `mark` recorded in this process


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with the one line the command ends with (exit 130)."""


def is_disk_full(exc: BaseException | None) -> bool:
    """An error (or the one it came from) that says the disk or a size limit is full; some
    writers (safetensors) raise their own error with the system's words."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in FULL:
            return True
        text = str(exc)
        if any(os.strerror(code) in text for code in FULL) or any(w in text
                                                                  for w in SQLITE_FULL):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _on_sigint(signum, frame) -> None:
    _signals[0] += 1
    if _signals[0] > 1:  # the second: no more cleaning up
        for p in list(_children):
            with contextlib.suppress(OSError):
                p.kill()
        os.write(2, b"tunelm: interrupted again: quitting at once (a trial left running is "
                    b"retried when its heartbeat goes stale)\n")
        os._exit(EXIT_CODE)
    for p in list(_children):
        with contextlib.suppress(OSError):
            p.send_signal(signal.SIGINT)
    raise KeyboardInterrupt


class _QuietOptuna(logging.Filter):
    """Optuna logs a marked trial's failure with its traceback; `mark` has said it in tunelm's
    words, and the command's last line says what to do."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(record.getMessage().startswith(f"Trial {n} failed") for n in _marked)


IN_A_STUDY = ("a trial that was running is marked interrupted in the study and counts for "
              "nothing; to continue, rerun the same command")


@contextlib.contextmanager
def handled(outcome: str = IN_A_STUDY):
    """Ctrl-C handled as above while the block runs (in the main thread; elsewhere the block
    runs as it is). A KeyboardInterrupt leaving it becomes `Interrupted`, which says `outcome`:
    what became of the work and how to go on."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _on_sigint)
    quiet = _QuietOptuna()
    optuna_log = logging.getLogger("optuna.study._optimize")
    optuna_log.addFilter(quiet)
    _signals[0] = 0
    try:
        yield
    except KeyboardInterrupt as exc:
        if isinstance(exc, Interrupted):
            raise
        raise Interrupted(f"{BY_THE_USER}: {outcome}") from None
    finally:
        optuna_log.removeFilter(quiet)
        if not _signals[0]:  # after a Ctrl-C a second one still quits at once, to the end
            signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def forwarding(procs: list[subprocess.Popen], grace: float = CHILD_GRACE_SECONDS):
    """Ctrl-C is passed on to `procs` while the block runs; when it interrupts the block, the
    children get `grace` seconds to record their trials and end (then they are killed)."""
    _children.extend(procs)
    try:
        yield
    except KeyboardInterrupt:
        for p in procs:
            try:
                p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        raise
    finally:
        for p in procs:
            _children.remove(p)


def mark(trial, trial_dir: Path | None, reason: str = BY_THE_USER) -> None:
    """Record on `trial` (still running) and in its result.json that it was cut off: why, and
    at which step. Optuna then fails it; `budget.spent` and the strategies pass it over."""
    result = _result(trial_dir)
    step = result.get("final_step")
    said = reason + (f" at step {step}" if step is not None else "")
    trial.set_user_attr(INTERRUPTED_ATTR, said)
    _marked.add(trial.number)
    log.info("trial %d: %s; it counts for nothing and runs again when the study continues",
             trial.number, said)
    if trial_dir is None or not trial_dir.is_dir():
        return
    if not result:  # cut off before training: the runner wrote nothing
        result = {"status": "failed", "stop_reason": "interrupted"}
    result[INTERRUPTED_ATTR] = said  # beside the error the runner recorded, if any
    result.setdefault("error", said)
    try:
        write_text_atomic(trial_dir / "result.json", json.dumps(result, indent=2) + "\n")
    except OSError:  # the full disk may refuse this too; the study has the reason
        log.warning("could not record the interruption in %s", trial_dir / "result.json")


def _result(trial_dir: Path | None) -> dict:
    try:
        return json.loads((trial_dir / "result.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return {}


__all__ = ["BY_THE_USER", "Interrupted", "forwarding", "handled", "is_disk_full",
           "mark"]
