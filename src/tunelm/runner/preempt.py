"""SIGTERM, the notice of a preemption: Slurm sends it before a job's time limit (and with
`--signal`), Kubernetes before it evicts a pod, spot instances before they go. tunelm takes it as
"save a checkpoint at the next step boundary and stop", never as a plain kill.

The handler only records that the notice came (`requested()`); the training loop's checkpoint
callback (`runner/checkpoint.py`) acts on it between two steps, where the state is whole. A
process that runs the trial in a child (`--isolate`, torchrun ranks) passes the notice on to it
(`forwarding`) and records it too, so the trial is handed back to the study however the child
ends.

    with sigterm_noted():
        trainer.train()          # the callback sees requested() and stops after saving
"""

from __future__ import annotations

import logging
import signal
import threading
from contextlib import contextmanager

log = logging.getLogger("tunelm.train")

_noticed = threading.Event()


def requested() -> bool:
    """True once this process has been sent SIGTERM (while a handler of ours was installed)."""
    return _noticed.is_set()


def clear() -> None:
    """Forget a notice (a test that sends one, a process that starts over)."""
    _noticed.clear()


@contextmanager
def _handler(on_signal):
    """Install `on_signal` for SIGTERM while the block runs (main thread only: elsewhere Python
    cannot install handlers, and the notice keeps its default meaning)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def sigterm_noted():
    """SIGTERM, while the block runs, is noted for the training loop (which must act on it:
    `checkpoint.Checkpointer`) instead of ending the process."""

    _noticed.clear()  # a notice an earlier run in this process acted on is spent

    def note(signum, frame):
        if not _noticed.is_set():
            log.warning("SIGTERM: saving a checkpoint at the next step boundary, then stopping")
        _noticed.set()

    with _handler(note):
        yield


@contextmanager
def forwarding(*procs):
    """While the block runs, SIGTERM to this process is noted and passed on to `procs`
    (`subprocess.Popen`s: the trial's child, torchrun, which passes it to every rank, or the
    local workers of `--workers`), each of which saves a checkpoint and stops."""

    def forward(signum, frame):
        _noticed.set()
        alive = [p for p in procs if p.poll() is None]
        log.warning("SIGTERM: passed on to process(es) %s, to checkpoint and stop",
                    ", ".join(str(p.pid) for p in alive))
        for p in alive:
            p.send_signal(signal.SIGTERM)

    with _handler(forward):
        yield


__all__ = ["clear", "forwarding", "requested", "sigterm_noted"]
