"""`search.devices_per_trial`: local workers cut the devices the scheduler listed into slices,
pure and without GPUs; the config's devices follow it; too many devices exit 2 before anything
starts; and (integration) a search whose trials run on 2 gloo ranks each."""

from __future__ import annotations

import json

import pytest

from tunelm.cli import main
from tunelm.config import from_dict
from tunelm.environment import worker_env
from tunelm.errors import ConfigError
from tunelm.search.slices import Slice, cuda_ids, plan_slices


def test_the_schedulers_list_is_cut_not_zero_to_n():
    ids = cuda_ids("4,5,6,7", 4)
    slices = plan_slices(2, 2, ids, cores=16)
    assert [s.devices for s in slices] == [("4", "5"), ("6", "7")]
    assert worker_env(slices[1].devices, slices[1].threads, {})["CUDA_VISIBLE_DEVICES"] == "6,7"
    # one device per worker takes them in the listed order; a spare device stays unused
    assert [s.devices for s in plan_slices(3, 1, ["2", "0", "3", "1"], 8)] == [("2",), ("0",),
                                                                               ("3",)]


def test_visible_ids_as_cuda_sees_them():
    assert cuda_ids(None, 3) == ["0", "1", "2"]  # unset: every device, in order
    assert cuda_ids(" GPU-aa , GPU-bb ", 2) == ["GPU-aa", "GPU-bb"]  # UUIDs kept as written
    assert cuda_ids("1,7,9", 2) == ["1", "7"]  # CUDA stops at the first it cannot use


def test_more_devices_than_visible_names_both_numbers_and_the_list():
    with pytest.raises(ConfigError) as err:
        plan_slices(3, 2, ["4", "5", "6", "7"], cores=16)
    msg = str(err.value)
    assert "search.workers 3 x search.devices_per_trial 2 = 6 devices" in msg
    assert "4 visible CUDA device(s) [4, 5, 6, 7]" in msg and "<= 4" in msg


def test_on_a_cpu_ranks_need_cores_of_their_own():
    assert plan_slices(1, 2, [], cores=2) == [Slice(0, (), 1)]
    assert [s.threads for s in plan_slices(2, 2, [], cores=8)] == [2, 2]
    with pytest.raises(ConfigError, match="2 x train.devices 2 = 4 devices, more than this "
                                          "machine has: 2 CPU core"):
        plan_slices(2, 2, [], cores=2, per_trial_field="train.devices")
    # one-rank workers share the cores as before, even more of them than cores
    assert [s.threads for s in plan_slices(3, 1, [], cores=2)] == [1, 1, 1]
    assert worker_env((), 3, {})["OMP_NUM_THREADS"] == "3"


def test_devices_per_trial_sets_the_trials_devices():
    cfg = from_dict({"data": {"task": "contracts"}, "search": {"devices_per_trial": 2}})
    assert cfg.train.devices == 2 and cfg.search.devices_per_trial == 2
    again = from_dict(cfg.to_dict())  # the stored config every worker reads says the same
    assert again.train.devices == 2
    assert from_dict({"data": {"task": "contracts"}, "train": {"devices": 3}}).train.devices == 3


@pytest.mark.parametrize("value, message", [
    (0, "search.devices_per_trial must be an integer >= 1 or empty, got 0"),
    ("two", "search.devices_per_trial"),
])
def test_bad_devices_per_trial(value, message):
    with pytest.raises(ConfigError, match=message):
        from_dict({"data": {"task": "contracts"}, "search": {"devices_per_trial": value}})


def test_devices_per_trial_disagreeing_with_train_devices_is_named():
    with pytest.raises(ConfigError) as err:
        from_dict({"data": {"task": "contracts"}, "train": {"devices": 4},
                   "search": {"devices_per_trial": 2}})
    assert ("search.devices_per_trial 2 and train.devices 4 disagree" in str(err.value)
            and "accepted: train.devices 2, or 1" in str(err.value))


def test_workers_beyond_the_cores_exit_2_and_start_nothing(tmp_path, capsys, monkeypatch):
    from tunelm.runner import devices

    monkeypatch.setattr(devices, "visible", lambda: devices.Visible(2, "cpu"))  # this machine
    out = tmp_path / "study"
    rc = main(["-q", "search", "presets/tiny.yaml", "--strategy", "random", "--workers", "2",
               "--devices-per-trial", "2", "--out", str(out)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "search.workers 2 x search.devices_per_trial 2 = 4 devices" in err
    assert "2 CPU core(s)" in err and not out.exists()


@pytest.mark.timeout(400)
def test_a_search_with_two_devices_per_trial_runs_on_a_cpu(tiny_config, tmp_path):
    raw = tiny_config(train={"max_steps": 2, "eval_steps": 2, "batch_size": 2}).to_dict()
    raw["search"].update({"pruner": "none", "curve_pruner": False, "keep_top": 1,
                          "space": {"train.learning_rate": {"type": "float", "low": 1e-3,
                                                            "high": 3e-2, "log": True}}})
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps(raw))
    out = tmp_path / "study"
    rc = main(["-q", "search", str(config), "--strategy", "random", "--trials", "2",
               "--devices-per-trial", "2", "--out", str(out)])
    assert rc == 0
    results = [json.loads(p.read_text()) for p in sorted(out.glob("trials/*/result.json"))]
    assert len(results) == 2
    for r in results:
        assert r["status"] == "ok" and r["plan"]["world_size"] == 2 and r["final_step"] == 2


def test_workers_take_their_slices_of_the_schedulers_list(monkeypatch, capsys):
    """The real path from the config to each worker's devices, with 4 GPUs as listed by a
    scheduler (the detection faked: no GPU here)."""
    from tunelm.runner import devices

    monkeypatch.setattr(devices, "visible", lambda: devices.Visible(4, "cuda"))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    assert main(["-q", "search", "presets/tiny.yaml", "--strategy", "random", "--workers", "2",
                 "--devices-per-trial", "2", "--dry-run"]) == 0
    assert "workers: 0 on GPUs 4,5; 1 on GPUs 6,7" in capsys.readouterr().out
