"""A trial cut off by Ctrl-C or a full disk (search/interrupt.py): marked, counted for nothing,
passed over by the strategies; the SIGINT handling itself. The drill (tests/test_faults.py) runs
the real command line; these are the parts, in milliseconds."""

import errno
import json
import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from tunelm.search import spent
from tunelm.search.budget import INTERRUPTED_ATTR, claimed
from tunelm.search.interrupt import (
    BY_THE_USER,
    Interrupted,
    forwarding,
    handled,
    is_disk_full,
    mark,
)
from tunelm.search.pbt import PBT_ATTR
from tunelm.search.pbt_run import collect
from tunelm.search.session import curves

FLOAT = optuna.distributions.FloatDistribution(0, 1)


def frozen(number, state, cost=10.0, **user):
    t = create_trial(state=state, value=0.5 if state == TrialState.COMPLETE else None,
                     params={"x": 0.1 * number}, distributions={"x": FLOAT},
                     user_attrs={"cost_seconds": cost, **user})
    t.number = number
    return t


def test_an_interrupted_trial_counts_for_nothing():
    trials = [frozen(0, TrialState.COMPLETE), frozen(1, TrialState.FAIL),
              frozen(2, TrialState.FAIL, cost=0.0, **{INTERRUPTED_ATTR: BY_THE_USER})]
    assert spent(trials).trials == 2  # the crashed trial 1 counts, the interrupted 2 does not
    assert claimed(trials) == 2


def test_the_strategies_pass_an_interrupted_trial_over():
    study = optuna.create_study()
    for t in (frozen(0, TrialState.COMPLETE),
              frozen(1, TrialState.FAIL, **{INTERRUPTED_ATTR: BY_THE_USER})):
        study.add_trial(t)
    assert [c.state for c in curves(study)] == ["complete"]  # not a "failed" configuration


def test_pbt_queues_an_interrupted_member_generation_again():
    study = optuna.create_study()
    member = {PBT_ATTR: {"member": 0, "generation": 0, "parent": None}}
    study.add_trial(frozen(0, TrialState.FAIL, **member, **{INTERRUPTED_ATTR: BY_THE_USER}))
    finished, pending, known = collect(study)
    assert (finished, pending, known) == ([], set(), set())


@pytest.mark.parametrize("exc, full", [
    (OSError(errno.EFBIG, "File too large"), True),
    (OSError(errno.ENOSPC, "No space left on device"), True),
    (RuntimeError("Error while serializing: I/O error: File too large (os error 27)"), True),
    (OSError(errno.ENOENT, "No such file or directory"), False),
    (ValueError("bad"), False),
])
def test_a_full_disk_is_told_apart(exc, full):
    assert is_disk_full(exc) is full


def test_a_full_disk_found_through_the_cause():
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("saving the checkpoint failed") from inner
    except RuntimeError as outer:
        assert is_disk_full(outer)


class FakeTrial:
    number = 3

    def __init__(self):
        self.user_attrs = {}

    def set_user_attr(self, key, value):
        self.user_attrs[key] = value


def test_mark_records_the_reason_and_the_step(tmp_path):
    (tmp_path / "result.json").write_text(json.dumps({"status": "failed",
                                                      "stop_reason": "interrupted",
                                                      "final_step": 12}))
    trial = FakeTrial()
    mark(trial, tmp_path)
    assert trial.user_attrs[INTERRUPTED_ATTR] == f"{BY_THE_USER} at step 12"
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["interrupted"] == result["error"] == f"{BY_THE_USER} at step 12"
    assert result["final_step"] == 12  # what the runner recorded stays


def test_mark_before_training_writes_a_result(tmp_path):
    mark(FakeTrial(), tmp_path, "the disk is full (x)")
    result = json.loads((tmp_path / "result.json").read_text())
    assert result == {"status": "failed", "stop_reason": "interrupted",
                      "interrupted": "the disk is full (x)", "error": "the disk is full (x)"}


def test_handled_turns_ctrl_c_into_one_line_and_restores_the_handler():
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(Interrupted, match="rerun the same command"):
        with handled():
            raise KeyboardInterrupt
    assert signal.getsignal(signal.SIGINT) is before  # no SIGINT came: nothing left installed
    with handled():
        pass
    assert signal.getsignal(signal.SIGINT) is before


def test_the_first_sigint_is_passed_on_to_the_children():
    """The child records that it got SIGINT and exits 130: the parent waits for it."""
    code = ("import signal, sys, time\n"
            "signal.signal(signal.SIGINT, lambda *a: sys.exit(130))\n"
            "print('ready', flush=True)\ntime.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                             process_group=0)
    assert child.stdout.readline().strip() == b"ready"
    before = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(Interrupted):
            with handled(), forwarding([child], grace=30):
                signal.raise_signal(signal.SIGINT)
                time.sleep(30)  # interrupted at once
        assert child.returncode == 130
    finally:
        signal.signal(signal.SIGINT, before)  # a second SIGINT would have quit pytest
        if child.poll() is None:
            child.kill()
        child.stdout.close()
