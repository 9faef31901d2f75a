"""Many workers on one study: the budget kept exactly, local worker processes, isolated trials,
the live table. (The PostgreSQL test with a killed worker is tests/test_distributed.py.)"""

import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from tunelm.cli import main
from tunelm.config import from_dict
from tunelm.errors import ConfigError
from tunelm.search import Budget, run_search
from tunelm.search.budget import claimed
from tunelm.search.live import LiveTable, brief_params, left
from tunelm.search.loop import Admitted, OverBudget
from tunelm.search.workers import worker_env

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = {"train.learning_rate": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True}}


def frozen(number, state, **user):
    t = create_trial(state=state, value=0.5 if state == TrialState.COMPLETE else None,
                     user_attrs=user)
    t.number = number
    return t


def test_claimed_counts_running_and_waiting_but_not_unrun():
    trials = [frozen(0, TrialState.COMPLETE), frozen(1, TrialState.RUNNING),
              frozen(2, TrialState.WAITING), frozen(3, TrialState.FAIL, not_run="taken")]
    assert claimed(trials) == 3


def test_a_trial_created_after_the_budget_was_taken_is_not_run():
    study = optuna.create_study()
    for _ in range(2):  # two trials another worker is running
        study.ask()
    ran = []
    objective = Admitted(lambda t: ran.append(t.number) or 1.0, limit=2)
    study.optimize(objective, n_trials=1, catch=(OverBudget,))
    last = study.trials[-1]
    assert ran == [] and last.state == TrialState.FAIL and last.user_attrs["not_run"]
    # with a place left it runs
    study.optimize(Admitted(lambda t: ran.append(t.number) or 1.0, limit=5), n_trials=1)
    assert ran == [3]


@pytest.fixture
def cfg_of(tiny_config):
    def make(**search):
        raw = tiny_config(train={"max_steps": 6, "eval_steps": 2}).to_dict()
        raw["search"].update({"space": SPACE, "pruner": "none", "curve_pruner": False, **search})
        return from_dict(raw)
    return make


def test_isolated_trials_run_in_child_processes(cfg_of, tmp_path):
    result = run_search(cfg_of(strategy="random", trials=2, isolate=True), tmp_path / "s")
    assert [t["state"] for t in result.trials] == ["COMPLETE", "COMPLETE"]
    for t in result.trials:
        assert t["value"] > 0
    for d in (tmp_path / "s" / "trials").iterdir():
        outcome = json.loads((d / "isolate-outcome.json").read_text())
        assert outcome["status"] == "ok" and outcome["result"]["final_step"] == 6


def test_local_workers_share_one_study(cfg_of, tmp_path, caplog):
    caplog.set_level("INFO", logger="tunelm")
    cfg = cfg_of(strategy="random", trials=4, workers=2)
    result = run_search(cfg, tmp_path / "s", live=True)
    finished = [t for t in result.trials if t["state"] == "COMPLETE"]
    assert len(finished) == 4 and result.stop_reason.startswith("trial budget spent: 4 of 4")
    assert result.spent_trials == 4 and result.spent_device_hours > 0
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 's' / 'study.db'}")
    assert study.user_attrs["spent"]["trials"] == 4  # the study records its total spend
    workers = {t.user_attrs["worker"] for t in study.trials if t.state == TrialState.COMPLETE}
    assert len(workers) == 2  # both processes ran trials
    params = [t["params"]["train.learning_rate"] for t in finished]
    assert len(set(params)) == 4  # workers draw from their own seeds
    assert len(list((tmp_path / "s" / "workers").glob("worker-*.log"))) == 2
    assert "trial  state" in caplog.text  # the live table header


def test_worker_environment_pins_gpus_or_shares_cores():
    assert worker_env(("1",), 0, base={})["CUDA_VISIBLE_DEVICES"] == "1"
    cpu = worker_env((), 1, base={"X": "1"})
    assert cpu["OMP_NUM_THREADS"] == "1" and cpu["X"] == "1" and "CUDA_VISIBLE_DEVICES" not in cpu


def test_live_table_rows_and_budget_left():
    study = optuna.create_study()
    study.add_trial(create_trial(value=2.0, params={"train.learning_rate": 1e-3},
                                 distributions={"train.learning_rate":
                                                optuna.distributions.FloatDistribution(1e-4, 1)},
                                 user_attrs={"cost_seconds": 360}))
    study.add_trial(create_trial(value=1.5, params={"train.learning_rate": 3e-3},
                                 distributions={"train.learning_rate":
                                                optuna.distributions.FloatDistribution(1e-4, 1)},
                                 user_attrs={"cost_seconds": 360}))
    table = LiveTable(Budget(trials=5, device_hours=1.0))
    rows = table.rows(study)
    assert len(rows) == 2
    assert "2.0000" in rows[0] and rows[1].split()[3] == "1.5000"  # best so far
    assert "3 trials, 0.80 dev-h" in rows[1] and "lr 3.00e-03" in rows[1]
    assert table.rows(study) == []  # each trial shown once
    assert left(Budget(), [], 0) == "no limit"
    assert brief_params({"lora.r": 8, "train.scheduler": "cosine"}) == "r 8 sched cosine"


def test_bad_worker_counts(cfg_of, tmp_path, capsys):
    with pytest.raises(ConfigError, match="search.workers 2 does not apply to the protocol"):
        cfg_of(strategy="protocol", workers=2)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps(cfg_of(strategy="random").to_dict()))
    assert main(["-q", "search", str(cfg), "--workers", "0", "--out", str(tmp_path / "x")]) == 2
    assert "search.workers must be" in capsys.readouterr().err
    assert not Path(tmp_path / "x").exists()


@pytest.mark.parametrize("isolate", [False, True])
def test_bad_data_ends_the_study_with_exit_2(cfg_of, tmp_path, capsys, isolate):
    raw = cfg_of(strategy="random", trials=3, isolate=isolate).to_dict()
    raw["data"]["max_length"] = 8  # every completion truncated away: a data problem
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps(raw))
    assert main(["-q", "search", str(cfg), "--out", str(tmp_path / "s")]) == 2
    assert "lost all its completion tokens" in capsys.readouterr().err
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 's' / 'study.db'}")
    assert len(study.trials) == 1  # it stopped at the first trial instead of failing three


def test_dry_run_estimates_the_cost(cfg_of, tmp_path, capsys):
    from tunelm.search.dimensions import Dimension
    from tunelm.search.estimate import estimate_cost, run_equivalents

    nine = [Dimension("train.learning_rate", "float", 1e-4, 1e-2, log=True),
            Dimension("lora.r", "categorical", choices=(4, 8, 16))]  # 3 x 3 grid points
    assert run_equivalents(cfg_of(strategy="protocol")) == (1.8, 2.6)
    assert run_equivalents(cfg_of(strategy="grid", trials=None), nine) == (9.0, 9.0)
    assert run_equivalents(cfg_of(strategy="grid", trials=4), nine) == (4.0, 4.0)
    assert run_equivalents(cfg_of(strategy="random", trials=None)) is None
    est = estimate_cost(cfg_of(strategy="random", trials=5))
    assert est["steps"] == 6 and est["run_hours"] > 0
    assert est["study_device_hours"][0] == pytest.approx(5 * est["run_hours"])
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps(cfg_of(strategy="random", trials=5).to_dict()))
    assert main(["-q", "search", str(cfg), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "one full run: 6 steps" in out and "5 full-run equivalents" in out


def test_a_fixed_trial_joins_an_existing_study(cfg_of, tmp_path):
    from tunelm.search.study import run_fixed_trial

    cfg = cfg_of(strategy="random", trials=1)
    run_search(cfg, tmp_path / "s")
    result = run_fixed_trial(tmp_path / "s", {"train.learning_rate": 2e-3}, tag="recommended")
    assert [r["state"] for r in result.trials] == ["COMPLETE", "COMPLETE"]
    added = result.trials[1]
    assert added["tag"] == "recommended" and added["params"]["train.learning_rate"] == 2e-3
    assert Path(added["trial_dir"], "result.json").exists()


def test_sqlite_transactions_take_the_write_lock_when_they_begin(tmp_path):
    """Two processes cannot both read that a queued trial waits and both take it."""
    import sqlite3

    from tunelm.search.study import make_storage

    storage = make_storage(f"sqlite:///{tmp_path / 's.db'}")
    with storage.engine.connect() as conn, conn.begin():
        conn.exec_driver_sql("SELECT count(*) FROM trials")  # a read, as Optuna's pop starts
        other = sqlite3.connect(tmp_path / "s.db", timeout=0.2)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        other.close()
