"""Checkpoints and preemption, without training: the config field, the fingerprint that refuses
another config's checkpoint, the metrics kept on resume, and a preempted trial going back to the
study (counted once, resumed in its series' directory). The runs are tests/test_preemption.py."""

import json
import signal

import optuna
import pytest
from optuna.trial import TrialState

from tunelm.config import Config, from_dict
from tunelm.errors import ConfigError
from tunelm.runner import checkpoint, preempt
from tunelm.search.budget import spent
from tunelm.search.preemption import PREEMPTED_TRIALS, requeue, retried_numbers, trial_dir
from tunelm.search.results import keep_top

optuna.logging.set_verbosity(optuna.logging.WARNING)


def cfg(**train) -> Config:
    raw = Config().to_dict()
    raw["data"]["task"] = "contracts"
    raw["train"].update(train)
    return from_dict(raw)


@pytest.mark.parametrize("bad", [-1, "often", float("inf")])
def test_checkpoint_minutes_must_be_a_number_at_least_0(bad):
    with pytest.raises(ConfigError, match="train.checkpoint_minutes"):
        cfg(checkpoint_minutes=bad)


def test_checkpoints_every_30_minutes_on_a_gpu_unless_set():
    assert checkpoint.interval_seconds(None, "cuda") == 1800
    assert checkpoint.interval_seconds(None, "cpu") is None
    assert checkpoint.interval_seconds(0, "cuda") is None
    assert checkpoint.interval_seconds(0.5, "cpu") == 30


def test_the_fingerprint_ignores_what_does_not_change_the_weights():
    a = checkpoint.training_fields(cfg())
    same = checkpoint.training_fields(cfg(checkpoint_minutes=5, report_to="tensorboard",
                                          save_best=False))
    other = checkpoint.training_fields(cfg(learning_rate=1e-3))
    assert checkpoint.fingerprint(a) == checkpoint.fingerprint(same)
    assert checkpoint.fingerprint(a) != checkpoint.fingerprint(other)


def test_a_checkpoint_of_another_config_is_refused_naming_the_field(tmp_path):
    saved = checkpoint.training_fields(cfg(learning_rate=3e-3))
    ckpt = tmp_path / checkpoint.RESUME_DIR
    ckpt.mkdir()
    (ckpt / checkpoint.STATE_FILE).write_text(json.dumps(
        {"fingerprint": checkpoint.fingerprint(saved), "fields": saved, "step": 7}))
    assert checkpoint.resume_point(tmp_path, cfg(learning_rate=3e-3)).step == 7
    with pytest.raises(ConfigError) as err:
        checkpoint.resume_point(tmp_path, cfg(learning_rate=1e-3))
    assert "train.learning_rate 0.003 in the checkpoint, 0.001 now" in str(err.value)
    assert "another --out" in str(err.value)


def test_a_kill_between_the_two_renames_leaves_the_old_checkpoint(tmp_path):
    old = tmp_path / (checkpoint.RESUME_DIR + ".old")
    old.mkdir()
    (old / checkpoint.STATE_FILE).write_text("{}")
    assert checkpoint.find(tmp_path) == old
    assert checkpoint.resume_point(tmp_path / "nothing", cfg()).path is None


def test_resuming_keeps_the_rows_up_to_the_checkpoint(tmp_path):
    rows = [{"step": s, "train_loss": 1.0} for s in range(1, 9)] + [{"step": 4, "eval_loss": 2}]
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    checkpoint.keep_rows_until(path, 5)
    kept = [json.loads(x) for x in path.read_text().splitlines()]
    assert [r["step"] for r in kept] == [1, 2, 3, 4, 5, 4]


def test_sigterm_is_noted_while_training_and_default_afterwards():
    preempt.clear()
    with preempt.sigterm_noted():
        signal.raise_signal(signal.SIGTERM)
        assert preempt.requested()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    preempt.clear()


def test_sigterm_is_passed_on_to_the_trials_processes():
    import subprocess
    import sys

    preempt.clear()
    children = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
                for _ in range(2)]
    with preempt.forwarding(*children):
        signal.raise_signal(signal.SIGTERM)
    assert [c.wait(timeout=30) for c in children] == [-signal.SIGTERM] * 2
    assert preempt.requested()
    preempt.clear()


def _preempted_series(study, times: int, directory="runs/s/trials/0000"):
    """A trial preempted `times` times and finished by its last copy."""
    study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    trial_id = study.trials[-1]._trial_id
    for _ in range(times):
        study._storage.set_trial_user_attr(trial_id, "trial_dir", str(directory))
        requeue(study, trial_id)
        study.tell(trial_id, state=TrialState.FAIL)
        trial = study.ask()  # the queued copy
        trial_id = trial._trial_id
    study.tell(trial_id, 0.5)


def test_a_preempted_trial_comes_back_with_its_parameters_and_counts_once():
    study = optuna.create_study()
    _preempted_series(study, times=2)
    first, second, last = study.trials
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.FAIL,
                                              TrialState.COMPLETE]
    assert last.params == first.params
    assert last.system_attrs["failed_trial"] == 0 and last.system_attrs[PREEMPTED_TRIALS] == [0, 1]
    assert retried_numbers(study.trials) == {0, 1}
    assert spent(study.trials).trials == 1
    assert trial_dir("runs/s", last) == trial_dir("runs/s", first)
    # a preemption does not use up the heartbeat's one retry
    assert last.system_attrs.get("retry_history", []) == []


def test_keep_top_keeps_the_best_of_a_directory_a_finished_retry_shares(tmp_path):
    shared = tmp_path / "trials" / "0000"
    (shared / "best").mkdir(parents=True)
    study = optuna.create_study()
    _preempted_series(study, times=1, directory=shared)
    keep_top(study, 1)
    assert (shared / "best").exists()


def test_a_retry_runs_though_the_trials_before_it_hold_every_place():
    from tunelm.search.loop import Admitted

    study = optuna.create_study()
    study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    requeue(study, study.trials[0]._trial_id)
    study.tell(0, state=TrialState.FAIL)
    ran = []
    study.optimize(Admitted(lambda t: ran.append(t.number) or 1.0, limit=1), n_trials=1)
    assert ran == [1]  # the budget of 1 trial: the retry holds the first trial's place
