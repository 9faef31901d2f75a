"""Experiment tracking (`--report-to`): the mapping to each tracker, the environment restored after
every run, bad input, and real runs logged to a local MLflow store and to TensorBoard files."""

import importlib.util
import json
import os
from pathlib import Path

import optuna
import pytest
import yaml

from tunelm import __version__
from tunelm.cli import main
from tunelm.config import report_targets
from tunelm.errors import ConfigError
from tunelm.runner import tracking
from tunelm.runner.tracking import (
    environment,
    plain_run,
    trainer_fields,
    trial_run,
    wandb_init_args,
    wandb_tags,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = {"train.learning_rate": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
         "lora.r": {"type": "categorical", "choices": [4, 8]}}
TRACKER_VARS = ("MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID", "MLFLOW_TAGS", "WANDB_PROJECT",
                "WANDB_NAME", "WANDB_TAGS", "WANDB_RUN_GROUP", "TENSORBOARD_LOGGING_DIR")


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@pytest.fixture(autouse=True)
def clean_tracker_env(monkeypatch):
    for key in TRACKER_VARS + ("MLFLOW_TRACKING_URI", "DISABLE_MLFLOW_INTEGRATION"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture
def config_file(small_data, tmp_path):
    """A tiny-model config file for the CLI: 4 steps, an eval every 2."""
    path = tmp_path / "track.yaml"
    path.write_text(yaml.safe_dump({
        "model": {"name": "tiny", "precision": "fp32"},
        "lora": {"r": 4, "alpha": 32, "dropout": 0.0},
        "data": {"train": small_data["train"], "eval": small_data["eval"], "max_length": 64},
        "train": {"max_steps": 4, "eval_steps": 2, "batch_size": 8, "learning_rate": 3e-3,
                  "early_stopping_patience": None},
        "eval": {"metric": "none"},
        "search": {"space": SPACE, "pruner": "none"},
    }))
    return path


def read_jsonl(path) -> list[dict]:
    return [json.loads(x) for x in Path(path).read_text().splitlines()]


def curve(rows: list[dict], key: str) -> list[tuple[int, float]]:
    return [(r["step"], r[key]) for r in rows if r.get(key) is not None]


def same_curve(got, want) -> bool:
    """(step, value) pairs: the same steps, values equal to float32 precision."""
    got, want = sorted(got), sorted(want)
    return [s for s, _ in got] == [s for s, _ in want] and [v for _, v in got] == pytest.approx(
        [v for _, v in want], rel=1e-6)


# ---------------------------------------------------------------------------------------------
# Config and bad input


def test_report_to_accepts_a_list_or_a_comma_string(tiny_config):
    assert report_targets(tiny_config().train.report_to) == []  # default: none
    cfg = tiny_config(train={"report_to": "MLflow, tensorboard"})
    assert report_targets(cfg.train.report_to) == ["mlflow", "tensorboard"]
    cfg = tiny_config(train={"report_to": ["wandb", "mlflow"]})
    assert report_targets(cfg.train.report_to) == ["wandb", "mlflow"]
    assert trainer_fields(tiny_config(), None) == {"report_to": "none"}


def test_unknown_tracker_names_the_field_and_the_accepted_values(tiny_config):
    with pytest.raises(ConfigError) as err:
        tiny_config(train={"report_to": "mlflow,bogus"})
    message = str(err.value)
    assert "train.report_to" in message and "'bogus'" in message
    assert "none, or any of wandb, mlflow, tensorboard" in message
    with pytest.raises(ConfigError, match="'none' cannot be combined"):
        tiny_config(train={"report_to": ["none", "mlflow"]})
    with pytest.raises(ConfigError, match="train.report_to must be a string or a non-empty list"):
        tiny_config(train={"report_to": 3.5})


@pytest.mark.parametrize("command", ["train", "search"])
def test_cli_report_to_bogus_exits_2_before_anything_runs(config_file, tmp_path, capsys,
                                                          command):
    out = tmp_path / "out"
    code = main(["-q", command, str(config_file), "--report-to", "bogus", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert "train.report_to" in err and "'bogus'" in err and "wandb, mlflow, tensorboard" in err
    assert not out.exists()


def test_missing_wandb_is_a_config_error_naming_the_package(config_file, tmp_path, capsys,
                                                            monkeypatch):
    monkeypatch.setitem(tracking.MODULES, "wandb", ("tunelm_no_such_module",))
    out = tmp_path / "run"
    assert main(["-q", "train", str(config_file), "--report-to", "wandb", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "train.report_to wandb" in err and "pip install wandb" in err
    assert not out.exists()  # refused before the model was loaded or a step trained


def test_a_missing_tracker_stops_a_search_before_its_first_trial(config_file, tmp_path, capsys,
                                                               monkeypatch):
    monkeypatch.setitem(tracking.MODULES, "mlflow", ("tunelm_no_such_module",))
    out = tmp_path / "study"
    code = main(["-q", "search", str(config_file), "--strategy", "random", "--trials", "2",
                 "--out", str(out), "--report-to", "mlflow"])
    assert code == 2
    assert "pip install mlflow" in capsys.readouterr().err
    assert not (out / "trials").exists()


# ---------------------------------------------------------------------------------------------
# Names, tags and each tracker's variables


def test_a_trial_run_is_named_after_the_study_and_tagged_with_its_parameters(tmp_path):
    run = trial_run("contracts", 3, "tpe", {"train.learning_rate": 3e-4, "lora.r": 16},
                    stage="recommended", trial_dir=tmp_path / "trials" / "0003")
    assert run.name == "contracts/trial-3" and run.experiment == "contracts"
    assert run.group == "contracts"
    assert run.tags == {
        "tunelm.study": "contracts", "tunelm.trial": "3", "tunelm.strategy": "tpe",
        "tunelm.version": __version__, "tunelm.stage": "recommended",
        "tunelm.trial_dir": str((tmp_path / "trials" / "0003").resolve()),
        "lora.r": "16", "train.learning_rate": "0.0003"}
    plain = plain_run(tmp_path / "lr3e-3")
    assert plain.name == "lr3e-3" and plain.experiment == "tunelm" and plain.group is None
    assert plain.tags["tunelm.version"] == __version__


def test_result_json_never_holds_a_tracking_password():
    assert tracking.without_password("postgresql://me:secret@db:5432/ml") == (
        "postgresql://me:***@db:5432/ml")
    assert tracking.without_password("sqlite:///mlruns/mlflow.db") == "sqlite:///mlruns/mlflow.db"
    assert tracking.without_password("http://host:5000") == "http://host:5000"


def test_wandb_mapping(tiny_config, tmp_path, monkeypatch):
    from transformers import TrainingArguments

    cfg = tiny_config(train={"report_to": "wandb"})
    run = trial_run("contracts", 2, "random", {"train.learning_rate": 0.0012345,
                                               "lora.target_modules": ["q_proj", "v_proj"],
                                               "x." + "y" * 80: 1})
    tags = wandb_tags(run)
    assert wandb_init_args(run) == {"project": "tunelm", "name": "contracts/trial-2",
                                    "group": "contracts", "tags": tags, "job_type": "trial"}
    assert {"study:contracts", "trial:2", "strategy:random", f"tunelm:{__version__}",
            "train.learning_rate=0.0012345", 'lora.target_modules=["q_proj", "v_proj"]'} <= set(tags)
    assert all(len(t) <= 64 for t in tags) and not any("trial_dir" in t for t in tags)
    monkeypatch.setenv("WANDB_PROJECT", "mine")
    plain = wandb_init_args(plain_run(tmp_path / "r1"))
    assert (plain["project"], plain["name"], plain["group"]) == ("mine", "r1", None)
    assert environment(cfg, tmp_path, run) == ({}, {})  # W&B hears it all from wandb.init
    args = TrainingArguments(output_dir=str(tmp_path / "hf"), **trainer_fields(cfg, run))
    assert args.report_to == ["wandb"] and args.run_name == "contracts/trial-2"


def test_wandb_offline_one_run_per_trial_in_one_worker(tiny_config, tmp_path, monkeypatch):
    """Two trials in one process, as a worker runs them: each its own W&B run, name and tags."""
    if not installed("wandb"):
        pytest.skip("wandb is not installed: pip install wandb")
    import wandb
    from transformers import TrainerCallback

    from tunelm.runner import run_trial

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    seen = []

    class Spy(TrainerCallback):
        def on_train_end(self, args, state, control, **kw):
            r = wandb.run
            seen.append((r.name, r.group, r.project, sorted(r.tags), r.id))

    cfg = tiny_config(train={"report_to": "wandb", "max_steps": 2, "eval_steps": 2})
    ids = []
    for number, lr in ((0, 0.003), (1, 0.01)):
        run = trial_run("wst", number, "random", {"train.learning_rate": lr})
        result = run_trial(cfg, tmp_path / f"{number:04d}", progress=False, callbacks=[Spy()],
                           run=run)
        ids.append(result["tracking"]["wandb_run_id"])
        assert wandb.run is None  # finished after its trial
    assert seen == [
        ("wst/trial-0", "wst", "tunelm", sorted(wandb_tags(trial_run(
            "wst", 0, "random", {"train.learning_rate": 0.003}))), ids[0]),
        ("wst/trial-1", "wst", "tunelm", sorted(wandb_tags(trial_run(
            "wst", 1, "random", {"train.learning_rate": 0.01}))), ids[1])]
    assert len(set(ids)) == 2
    offline = {p.name.rsplit("-", 1)[1] for p in (tmp_path / "wandb").glob("offline-run-*")}
    assert offline == set(ids)  # each run written where W&B's offline mode keeps runs


def test_the_environment_is_set_for_one_run_and_restored(tiny_config, tmp_path, monkeypatch):
    if not installed("tensorboard"):
        pytest.skip("tensorboard is not installed: pip install tensorboard")
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", "/somewhere/else")
    cfg = tiny_config(train={"report_to": "tensorboard"})
    before = dict(os.environ)
    with tracking.tracking(cfg, tmp_path / "run") as tracker:
        assert os.environ["TENSORBOARD_LOGGING_DIR"] == str(tmp_path / "run" / "tensorboard")
        assert tracker.run.name == "run"
    assert dict(os.environ) == before
    with pytest.raises(RuntimeError), tracking.tracking(cfg, tmp_path / "run2"):
        raise RuntimeError("a failed trial")
    assert dict(os.environ) == before
    with tracking.tracking(tiny_config(), tmp_path / "run3") as tracker:  # report_to none
        assert tracker is None and dict(os.environ) == before


# ---------------------------------------------------------------------------------------------
# Real runs


def test_tensorboard_event_files_in_the_trial_directory(config_file, tmp_path):
    if not installed("tensorboard"):
        pytest.skip("tensorboard is not installed: pip install tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "tb-run"
    for _ in range(2):  # a rerun in the same directory replaces the first run's events
        assert main(["-q", "train", str(config_file), "--report-to", "tensorboard",
                     "--out", str(out)]) == 0
    assert "TENSORBOARD_LOGGING_DIR" not in os.environ
    events = sorted((out / "tensorboard").glob("events.out.tfevents.*"))
    assert events, "no event files in the trial directory"
    acc = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    scalars = acc.Tags()["scalars"]
    train = [e.value for e in acc.Scalars("train/loss")]
    evals = [(e.step, e.value) for e in acc.Scalars("eval/loss")]
    rows = read_jsonl(out / "metrics.jsonl")
    assert len(train) == len([r for r in rows if r.get("train_loss") is not None]) == 4
    assert same_curve(evals, curve(rows, "eval_loss")) and len(evals) == 2
    assert "train/learning_rate" in scalars
    assert "tunelm/run/text_summary" in acc.Tags()["tensors"]  # the run's name and tags


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    if not installed("mlflow"):
        pytest.skip("mlflow is not installed: pip install -e .[dev] brings mlflow-skinny")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def mlflow_runs(uri: str, experiment: str):
    import mlflow

    client = mlflow.MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no MLflow experiment {experiment!r}"
    return client, client.search_runs([found.experiment_id])


def check_logged_like_the_trial(client, run, trial_dir: Path) -> list[int]:
    """The run's loss histories are the trial's metrics.jsonl; its summary its result.json.
    Returns the steps of the eval losses."""
    rows = read_jsonl(trial_dir / "metrics.jsonl")
    loss = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "loss")]
    evals = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "eval_loss")]
    assert same_curve(loss, curve(rows, "train_loss")) and loss
    assert same_curve(evals, curve(rows, "eval_loss"))
    return [step for step, _ in sorted(evals)]
    result = json.loads((trial_dir / "result.json").read_text())
    assert run.data.metrics["best_eval_loss"] == pytest.approx(result["best_eval_loss"])
    assert run.data.tags["tunelm.stop_reason"] == result["stop_reason"]
    assert run.info.status == "FINISHED"


def test_a_search_logs_each_trial_to_a_real_mlflow_store(config_file, tmp_path, mlflow_store,
                                                         monkeypatch):
    # the pruner stops trial 1 at its first evaluation
    monkeypatch.setattr(optuna.trial.Trial, "should_prune", lambda self: self.number == 1)
    out = tmp_path / "study"
    # 5 steps, an eval every 2: the last step's eval loss (step 5) is in the run too
    assert main(["-q", "search", str(config_file), "--strategy", "random", "--trials", "2",
                 "--out", str(out), "--study", "trk", "--report-to", "mlflow",
                 "--set", "train.max_steps=5"]) == 0
    assert not any(k in os.environ for k in TRACKER_VARS)  # restored after the search
    client, runs = mlflow_runs(mlflow_store, "trk")
    assert len(runs) == 2
    study = optuna.load_study(study_name="trk", storage=f"sqlite:///{out / 'study.db'}")
    by_name = {r.info.run_name: r for r in runs}
    assert set(by_name) == {"trk/trial-0", "trk/trial-1"}
    for trial in study.trials:
        run = by_name[f"trk/trial-{trial.number}"]
        tags = run.data.tags
        assert tags["tunelm.study"] == "trk" and tags["tunelm.trial"] == str(trial.number)
        assert tags["tunelm.strategy"] == "random" and tags["tunelm.version"] == __version__
        params = trial.user_attrs["params"]
        assert set(params) == {"train.learning_rate", "lora.r"}
        for path, value in params.items():
            assert tags[path] == str(value)
        # the Trainer's own parameters, as MLflowCallback logs them
        assert float(run.data.params["learning_rate"]) == pytest.approx(
            params["train.learning_rate"])
        trial_dir = Path(trial.user_attrs["trial_dir"])
        steps = check_logged_like_the_trial(client, run, trial_dir)
        result = json.loads((trial_dir / "result.json").read_text())
        assert result["tracking"]["mlflow_run_id"] == run.info.run_id
        if trial.number == 0:
            assert trial.state.name == "COMPLETE" and steps == [2, 4, 5]
            assert "tunelm.pruned_at" not in tags
        else:
            assert trial.state.name == "PRUNED" and steps == [2]
            assert tags["tunelm.pruned_at"] == "2"


def test_isolated_trials_and_workers_keep_the_trial_names(config_file, tmp_path, mlflow_store):
    """An --isolate trial runs in a child process; a worker reads report_to from the study."""
    from tunelm.config import load_config
    from tunelm.search import open_study, run_search

    out = tmp_path / "iso"
    cfg = load_config(config_file, ["search.strategy=random", "search.trials=1",
                                    "search.isolate=true", "train.report_to=mlflow"])
    open_study(cfg, out)  # the study, with its config, as `tunelm search` leaves it
    run_search(None, out, worker=True)  # a worker: no config but the stored one
    client, runs = mlflow_runs(mlflow_store, "iso")
    assert [r.info.run_name for r in runs] == ["iso/trial-0"]
    assert runs[0].data.tags["tunelm.trial"] == "0"
    check_logged_like_the_trial(client, runs[0], out / "trials" / "0000")


def test_a_plain_train_run_goes_to_the_tunelm_experiment(config_file, tmp_path, mlflow_store,
                                                         monkeypatch):
    monkeypatch.setenv("MLFLOW_RUN_ID", "0123456789abcdef")  # would merge every trial into one
    out = tmp_path / "lr3e-3"
    assert main(["-q", "train", str(config_file), "--report-to", "mlflow,tensorboard",
                 "--out", str(out)]) == 0
    assert os.environ["MLFLOW_RUN_ID"] == "0123456789abcdef"  # restored
    client, runs = mlflow_runs(mlflow_store, "tunelm")
    assert [r.info.run_name for r in runs] == ["lr3e-3"]
    assert runs[0].data.tags["tunelm.trial_dir"] == str(out.resolve())
    check_logged_like_the_trial(client, runs[0], out)
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))


def test_a_diverged_run_is_marked_failed(config_file, tmp_path, mlflow_store):
    out = tmp_path / "hot"
    code = main(["-q", "train", str(config_file), "--report-to", "mlflow", "--out", str(out),
                 "--set", "model.method=full", "--set", "train.learning_rate=0.5",
                 "--set", "train.max_grad_norm=0", "--set", "train.warmup_ratio=0",
                 "--set", "train.max_steps=40", "--set", "train.eval_steps=40",
                 "--set", "train.scheduler=constant_with_warmup"])
    _, runs = mlflow_runs(mlflow_store, "tunelm")
    result = json.loads((out / "result.json").read_text())
    assert (code, result["status"]) == (1, "failed")
    assert runs[0].info.status == "FAILED"
    assert runs[0].data.tags["tunelm.stop_reason"] == result["stop_reason"]


def test_user_experiment_name_wins(tiny_config, tmp_path, mlflow_store, monkeypatch):
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "mine")
    cfg = tiny_config(train={"report_to": "mlflow"})
    with tracking.tracking(cfg, tmp_path / "x", trial_run("s", 0, "grid", {})) as tracker:
        tracker.finish({"status": "ok", "best_eval_loss": 1.5, "final_step": 3,
                        "stop_reason": "completed"})
    _, runs = mlflow_runs(mlflow_store, "mine")
    assert runs[0].info.run_name == "s/trial-0" and runs[0].info.status == "FINISHED"
    assert runs[0].data.metrics["best_eval_loss"] == 1.5
    assert os.environ["MLFLOW_EXPERIMENT_NAME"] == "mine"
