"""What is exported: the best configuration of a study, or the configuration of one run.

A study is a directory holding `study.db`, or a storage URL with a study name; a run (or a
study's trial) is a directory holding the resolved `config.yaml` that `tunelm train` wrote.
The run's `result.json`, when it is there, gives the number of training sequences, so that
values tunelm derives from the step count (evaluation cadence, the WSD decay) are exported as the
run had them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..config import Config, load_config
from ..errors import ConfigError
from ..search.location import is_storage_url


@dataclass
class Source:
    """A configuration to export and where it came from."""

    cfg: Config
    origin: str  # one line for the exported file's header
    sequences: int | None = None  # training sequences of the run, when its result.json says
    run_dir: Path | None = None


def load_source(source: str | Path, study_name: str | None = None) -> Source:
    """The Source of a study directory, a storage URL (with `study_name`) or a run directory.

    Raises ConfigError (exit code 2) for a path that is neither, and for a study with no
    finished trial.
    """
    text = str(source)
    if is_storage_url(text):
        if not study_name:
            raise ConfigError(f"{text} is a storage URL: name the study with --study NAME")
        return _from_study(text, study_name)
    path = Path(text).expanduser()
    if path.is_dir() and (path / "study.db").exists():
        return _from_study(str(path), study_name)
    if path.is_dir() and (path / "config.yaml").exists():
        return _from_run(path)
    what = "does not exist" if not path.exists() else (
        "is a directory with neither study.db nor config.yaml" if path.is_dir() else "is a file")
    raise ConfigError(
        f"{text} {what}: give a study directory (with study.db, as `tunelm search` writes), a "
        "run or trial directory (with config.yaml, as `tunelm train` writes), or a storage URL "
        "with --study NAME"
    )


def _from_study(dir_or_url: str, study_name: str | None) -> Source:
    from ..search.study import best_config, load_study

    try:
        cfg = best_config(dir_or_url, study_name)
    except ConfigError as exc:
        raise ConfigError(f"{exc}; nothing to export: let `tunelm search` finish a trial "
                          "first, or export a run directory") from None
    study, _ = load_study(dir_or_url, name=study_name)  # to read: no sampler, nothing created
    best = study.best_trial
    run_dir = best.user_attrs.get("trial_dir")
    run_dir = Path(run_dir) if run_dir else None
    origin = (f"study {study.study_name}, trial {best.number} (best of the study: "
              f"{cfg.search.objective} {best.value:.4g})")
    return Source(cfg, origin, _sequences(run_dir), run_dir)


def _from_run(path: Path) -> Source:
    cfg = load_config(path / "config.yaml")
    result = _result(path)
    origin = f"run {path.resolve()}"
    if result.get("best_eval_loss") is not None:
        origin += f" (best eval loss {result['best_eval_loss']:.4g} at step {result['best_step']})"
    if result.get("status") == "failed":
        origin += f" -- the run failed ({result.get('stop_reason')})"
    return Source(cfg, origin, _sequences(path), path)


def _result(run_dir: Path | None) -> dict:
    if run_dir is None or not (run_dir / "result.json").exists():
        return {}
    try:
        return json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _sequences(run_dir: Path | None) -> int | None:
    value = (_result(run_dir).get("plan") or {}).get("sequences")
    return int(value) if isinstance(value, int) and value > 0 else None
