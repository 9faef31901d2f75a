"""Experiment tracking: every run logs to the trackers of `train.report_to` (wandb, mlflow,
tensorboard) through Transformers' own callbacks; this module tells them who the run is.

A search trial's run is named `<study>/trial-<number>` and tagged with the study, the trial number,
the strategy, the trial's parameters (dotted config paths, `train.learning_rate`) and the tunelm
version; a plain `tunelm train` run is named after its directory. Each tracker hears it its own way:

    mlflow       experiment = MLFLOW_EXPERIMENT_NAME if set, else the study name (`tunelm` for a
                 plain run); the run is started here, with its name and tags, and the callback
                 logs into it (the tracking URI is MLflow's own MLFLOW_TRACKING_URI)
    wandb        project = WANDB_PROJECT if set, else `tunelm`; the study is the run group; the
                 run is started here with its name, group and tags (wandb reads WANDB_TAGS and
                 WANDB_RUN_GROUP once per process, so in a worker they would stick to the first
                 trial), the callback logs into it, and `end` finishes it
    tensorboard  event files in the trial directory, `<trial>/tensorboard` (TENSORBOARD_LOGGING_DIR)

    >>> run = trial_run("contracts", 3, "tpe", {"train.learning_rate": 3e-4})
    >>> run.name, run.tags["train.learning_rate"]
    ('contracts/trial-3', '0.0003')
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import shutil
import sys
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import __version__, hf_args
from ..config import Config, report_targets
from ..errors import ConfigError

log = logging.getLogger("tunelm.train")

# the modules Transformers' callbacks import, and the pip package that brings each
MODULES = {"wandb": ("wandb",), "mlflow": ("mlflow",), "tensorboard": ("tensorboard", "tensorboardX")}
PIP = {"wandb": "pip install wandb", "mlflow": "pip install mlflow (or mlflow-skinny)",
       "tensorboard": "pip install tensorboard"}
WANDB_TAG_CHARS = 64  # W&B refuses longer tags


@dataclass(frozen=True)
class RunInfo:
    """Who a tracked run is: its name, the experiment it files under (MLflow experiment, W&B
    group), and its tags."""

    name: str
    experiment: str
    tags: dict[str, str] = field(default_factory=dict)
    group: str | None = None  # W&B run group: the study

    def to_dict(self) -> dict:
        return asdict(self)


def _text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value) if isinstance(
        value, (list, dict)) else str(value)


def trial_run(study: str, number: int, strategy: str, params: dict, *, stage: str | None = None,
              trial_dir: str | Path | None = None) -> RunInfo:
    """The run of one search trial."""
    tags = {"tunelm.study": study, "tunelm.trial": str(number), "tunelm.strategy": strategy,
            "tunelm.version": __version__}
    if stage:
        tags["tunelm.stage"] = stage  # the protocol's stage, or "recommended"
    if trial_dir is not None:
        tags["tunelm.trial_dir"] = str(Path(trial_dir).resolve())
    tags.update({path: _text(value) for path, value in sorted(params.items())})
    return RunInfo(f"{study}/trial-{number}", study, tags, group=study)


def plain_run(out: str | Path) -> RunInfo:
    """The run of a plain `tunelm train`: named after its directory, in experiment `tunelm`."""
    out = Path(out).resolve()
    return RunInfo(out.name, "tunelm", {"tunelm.version": __version__,
                                        "tunelm.trial_dir": str(out)})


def check_installed(cfg: Config) -> None:
    """A ConfigError naming the pip package of every tracker that is asked for and missing."""
    problems = []
    for name in report_targets(cfg.train.report_to):
        if not any(importlib.util.find_spec(m) is not None for m in MODULES[name]):
            problems.append(f"train.report_to {name}: the {name} package is not installed; "
                            f"{PIP[name]}, or drop {name} from --report-to")
    if ("mlflow" in report_targets(cfg.train.report_to)
            and os.environ.get("DISABLE_MLFLOW_INTEGRATION", "").upper() == "TRUE"):
        problems.append("train.report_to mlflow: DISABLE_MLFLOW_INTEGRATION=TRUE turns "
                        "Transformers' MLflow callback off; unset it, or drop mlflow")
    if problems:
        raise ConfigError(problems)


def trainer_fields(cfg: Config, run: RunInfo | None) -> dict:
    """The TrainingArguments fields of tracking: `report_to`, and `run_name` for a run.
    (Transformers 5 has no `logging_dir` argument: TensorBoard's directory is an environment
    variable, see `environment`.)"""
    out = {"report_to": hf_args.report_to(cfg.train)}
    if run is not None:
        out["run_name"] = run.name
    return out


def wandb_tags(run: RunInfo) -> list[str]:
    """W&B tags are plain strings: `study:NAME`, `trial:3`, `train.learning_rate=0.0003`."""
    short = {"tunelm.study": "study", "tunelm.trial": "trial", "tunelm.strategy": "strategy",
             "tunelm.stage": "stage", "tunelm.version": "tunelm"}
    tags = []
    for key, value in run.tags.items():
        if key == "tunelm.trial_dir":
            continue
        text = f"{short[key]}:{value}" if key in short else f"{key}={value}"
        tags.append(text[:WANDB_TAG_CHARS])
    return tags


def wandb_init_args(run: RunInfo) -> dict:
    """The `wandb.init` arguments of a run (WANDB_PROJECT, WANDB_MODE and the rest of the
    user's W&B environment still apply)."""
    return {"project": os.environ.get("WANDB_PROJECT") or "tunelm", "name": run.name,
            "group": run.group, "tags": wandb_tags(run), "job_type": "trial" if run.group
            else "train"}


def environment(cfg: Config, out: str | Path, run: RunInfo) -> tuple[dict, dict]:
    """(settings of this run, defaults a user's own environment overrides), as the trackers'
    environment variables."""
    targets = report_targets(cfg.train.report_to)
    settings, defaults = {}, {}
    if "tensorboard" in targets:
        settings["TENSORBOARD_LOGGING_DIR"] = str(Path(out).resolve() / "tensorboard")
    if "mlflow" in targets:
        defaults["MLFLOW_EXPERIMENT_NAME"] = run.experiment
    return settings, defaults


class Tracker:
    """The trackers of one run, while it trains; `finish(result)` logs tunelm's own summary."""

    def __init__(self, targets: list[str], run: RunInfo):
        self.targets, self.run = targets, run
        self.status = "FINISHED"
        self.mlflow_run_id: str | None = None
        self.wandb_run = None  # the W&B run started here (None: none, or the user's own)

    def start(self, out: Path) -> None:
        if "mlflow" in self.targets:
            self._start_mlflow()
        if "tensorboard" in self.targets:
            self._tensorboard_tags(Path(os.environ["TENSORBOARD_LOGGING_DIR"]))
        if "wandb" in self.targets:
            import wandb

            if wandb.run is None:  # else: tunelm called inside the user's own W&B run
                self.wandb_run = wandb.init(**wandb_init_args(self.run))
                log.info("wandb | run %s (%s) in project %s", self.run.name,
                         self.wandb_run.id, self.wandb_run.project)

    def _start_mlflow(self) -> None:
        # The run is started here rather than by Transformers' MLflowCallback: the callback ends
        # the run it starts at the end of training, always as FINISHED, before tunelm knows how
        # the run went (best eval loss, diverged or not). A run that is active when training
        # starts is the one the callback logs into and leaves open; `end` closes it.
        import mlflow

        name = os.environ["MLFLOW_EXPERIMENT_NAME"]
        experiment = _experiment_id(mlflow, name)
        nested = mlflow.active_run() is not None  # tunelm called inside the user's own run
        active = mlflow.start_run(experiment_id=experiment, run_name=self.run.name,
                                  tags=self.run.tags, nested=nested)
        self.mlflow_run_id = active.info.run_id
        log.info("mlflow | run %s (%s) in experiment %s at %s", self.run.name,
                 self.mlflow_run_id, name, mlflow.get_tracking_uri())

    def _tensorboard_tags(self, logdir: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # only tensorboardX: Transformers' callback uses it, so do we
            from tensorboardX import SummaryWriter
        shutil.rmtree(logdir, ignore_errors=True)  # a rerun in this directory starts afresh
        with SummaryWriter(log_dir=str(logdir)) as writer:
            rows = "\n".join(f"| {k} | {v} |" for k, v in self.run.tags.items())
            writer.add_text("tunelm/run", f"**{self.run.name}**\n\n| tag | value |\n|---|---|\n"
                            + rows)
        log.info("tensorboard | event files in %s", logdir)

    def finish(self, result: dict) -> None:
        """tunelm's summary of the run: best and final eval loss, task metrics, stop reason;
        and where the run is, as `result["tracking"]`. The training is done: a tracker that
        fails now is logged, not raised."""
        result["tracking"] = self.where()
        try:
            self._summary(result)
        except Exception as exc:  # noqa: BLE001 - a tracker outage does not undo the run
            log.warning("could not log the run's summary to %s: %s", ", ".join(self.targets),
                        exc)

    def where(self) -> dict:
        out: dict = {"run_name": self.run.name}
        if self.mlflow_run_id is not None:
            import mlflow

            out.update(mlflow_run_id=self.mlflow_run_id,
                       mlflow_tracking_uri=without_password(mlflow.get_tracking_uri()))
        if "tensorboard" in self.targets:
            out["tensorboard_dir"] = os.environ.get("TENSORBOARD_LOGGING_DIR")
        wandb = sys.modules.get("wandb")
        if wandb is not None and getattr(wandb, "run", None) is not None:
            out["wandb_run_id"] = wandb.run.id
        return out

    def _summary(self, result: dict) -> None:
        if result.get("status") != "ok":
            self.status = "KILLED" if result.get("stop_reason") == "interrupted" else "FAILED"
        summary = {"best_eval_loss": result.get("best_eval_loss"),
                   "best_step": result.get("best_step"),
                   "final_eval_loss": result.get("final_eval_loss")}
        for key, value in (result.get("task_metrics") or {}).items():
            summary[f"task_{key}"] = value
        summary = {k: float(v) for k, v in summary.items() if isinstance(v, (int, float))
                   and not isinstance(v, bool) and math.isfinite(v)}
        reason = str(result.get("stop_reason", ""))
        if self.mlflow_run_id is not None:
            import mlflow

            mlflow.MlflowClient().log_batch(self.mlflow_run_id, metrics=[
                mlflow.entities.Metric(k, v, _now_ms(), int(result.get("final_step") or 0))
                for k, v in summary.items()], tags=[mlflow.entities.RunTag(
                    "tunelm.stop_reason", reason)])
        wandb = sys.modules.get("wandb")
        if wandb is not None and getattr(wandb, "run", None) is not None:
            wandb.run.summary.update({**summary, "stop_reason": reason})

    def end(self) -> None:
        if self.mlflow_run_id is not None:
            import mlflow

            active = mlflow.active_run()
            if active is not None and active.info.run_id == self.mlflow_run_id:
                mlflow.end_run(status=self.status)
            else:  # something else ended or stacked runs: close ours by its id
                mlflow.MlflowClient().set_terminated(self.mlflow_run_id, status=self.status)
        if self.wandb_run is not None:
            # the callback never finishes a run: the next trial of this worker would log into it
            self.wandb_run.finish(exit_code=0 if self.status == "FINISHED" else 1)


def without_password(uri: str) -> str:
    """A URI fit for result.json: `postgresql://me:secret@db/ml` -> `postgresql://me:***@db/ml`."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if not parts.password:
        return uri
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def mark_pruned(result: dict, step: int) -> None:
    """Tag a trial's MLflow run `tunelm.pruned_at`: the pruner's verdict is known only after
    the run ended (W&B and TensorBoard runs are left as they are)."""
    run_id = (result.get("tracking") or {}).get("mlflow_run_id")
    if not run_id:
        return
    try:
        import mlflow

        mlflow.MlflowClient().set_tag(run_id, "tunelm.pruned_at", str(step))  # this process's URI
    except Exception as exc:  # noqa: BLE001 - a tracker outage does not undo the trial
        log.warning("could not tag MLflow run %s as pruned: %s", run_id, exc)


def _experiment_id(mlflow, name: str) -> str:
    client = mlflow.MlflowClient()
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name)
    except mlflow.exceptions.MlflowException:  # another worker created it a moment ago
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


@contextmanager
def tracking(cfg: Config, out: str | Path, run: RunInfo | None = None):
    """Set up the trackers of `train.report_to` for one run and yield its Tracker (None when
    nothing is tracked). The environment variables are restored afterwards: a search worker
    runs many trials in one process."""
    targets = report_targets(cfg.train.report_to)
    if not targets:
        yield None
        return
    check_installed(cfg)
    run = run or plain_run(out)
    settings, defaults = environment(cfg, out, run)
    names = set(settings) | set(defaults) | {"MLFLOW_RUN_ID"}
    saved = {k: os.environ.get(k) for k in names}
    os.environ.update(settings)
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    if "mlflow" in targets and os.environ.pop("MLFLOW_RUN_ID", None):
        log.warning("MLFLOW_RUN_ID is ignored: tunelm starts one MLflow run per trial")
    tracker = Tracker(targets, run)
    try:
        tracker.start(Path(out))
        yield tracker
    except BaseException as exc:
        tracker.status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
        raise
    finally:
        try:
            tracker.end()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


__all__ = ["RunInfo", "Tracker", "check_installed", "environment", "mark_pruned", "plain_run",
           "trainer_fields", "tracking", "trial_run", "wandb_init_args", "wandb_tags"]
