"""The Python surface: what the commands do, callable from a notebook.

Each function takes a config as a `Config`, a dict of sections or a YAML path, and where it
applies the data as a path (file, directory, save_to_disk directory or hub id), a list of dicts
or a `datasets.Dataset`; each returns the values the command writes (result.json, the study
summary, the diagnosis) as typed objects.

    import tunelm
    result = tunelm.train({"model": {"name": "tiny"}, "train": {"max_steps": 8}},
                          data=[{"prompt": "1+1=", "completion": "2"}] * 16)
    print(result.best_eval_loss, tunelm.diagnose(result.run_dir).verdict)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from .config import Config, apply_overrides, from_dict, load_config
from .errors import ConfigError


@dataclass
class TrainResult:
    """One run's result.json, its main figures as fields and the whole of it as `raw`."""

    run_dir: Path
    status: str
    stop_reason: str
    best_eval_loss: float | None
    best_step: int | None
    final_eval_loss: float | None
    task_metrics: dict
    wall_seconds: float
    final_score: dict | None = None  # the best checkpoint on the whole eval set (result.json)
    raw: dict = field(repr=False, default_factory=dict)

    @classmethod
    def from_result(cls, run_dir: Path, result: dict) -> TrainResult:
        names = ("status", "stop_reason", "best_eval_loss", "best_step", "final_eval_loss",
                 "task_metrics", "wall_seconds", "final_score")
        return cls(Path(run_dir), **{n: result.get(n) for n in names}, raw=result)


def as_config(config: Config | dict | str | Path, overrides: dict | None = None) -> Config:
    """A validated Config from a Config, a dict of sections or a YAML path, with `overrides`
    ({"train.learning_rate": 1e-4, ...}) applied. Raises ConfigError listing every problem."""
    if isinstance(config, Config):
        raw = config.to_dict()
    elif isinstance(config, dict):
        raw = json.loads(json.dumps(config))
    elif isinstance(config, (str, Path)):
        raw = load_config(config).to_dict()
    else:
        raise ConfigError(f"config must be a Config, a dict or a YAML path, got "
                          f"{type(config).__name__}")
    return from_dict(apply_overrides(raw, list((overrides or {}).items())))


def place_data(data, role: str) -> str | None:
    """A path the config can name for `data`: paths as they are; a list of dicts written as
    JSONL and a datasets.Dataset saved with save_to_disk, under inputs/ of the data cache,
    named by their content (so search workers and later runs find the same files)."""
    from .data import cache_root
    from .files import write_jsonl_atomic

    if data is None or isinstance(data, (str, Path)):
        return None if data is None else str(data)
    inputs = cache_root() / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    if isinstance(data, list):
        if not all(isinstance(r, dict) for r in data):
            raise ConfigError(f"{role} data as a list must hold dicts (one example each)")
        text = json.dumps(data, sort_keys=True, default=str)
        path = inputs / f"{role}-{hashlib.blake2b(text.encode(), digest_size=12).hexdigest()}.jsonl"
        if not path.exists():
            write_jsonl_atomic(path, data)
        return str(path)
    if hasattr(data, "save_to_disk") and hasattr(data, "_fingerprint"):
        path = inputs / f"{role}-{data._fingerprint}"
        if not (path / "state.json").exists():
            data.save_to_disk(str(path))
        return str(path)
    raise ConfigError(f"{role} data must be a path, a list of dicts or a datasets.Dataset, got "
                      f"{type(data).__name__}")


def _with_data(config, data, eval_data, overrides) -> Config:
    sets = dict(overrides or {})
    for key, value in (("data.train", place_data(data, "train")),
                       ("data.eval", place_data(eval_data, "eval"))):
        if value is not None:
            sets[key] = value
    return as_config(config, sets)


def train(config, data=None, *, eval_data=None, out: str | Path | None = None,
          overrides: dict | None = None, progress: bool = False) -> TrainResult:
    """One fine-tuning run (`tunelm train`) into `out` (default runs/train); returns its
    result. `data`/`eval_data` replace data.train/data.eval. Raises TrainingError when the run
    diverged (its result is on the exception), DataError or ConfigError on bad input."""
    from .runner import run_trial

    cfg = _with_data(config, data, eval_data, overrides)
    out = Path(out or "runs/train")
    return TrainResult.from_result(out, run_trial(cfg, out, progress=progress))


def search(config, data=None, *, eval_data=None, out: str | Path | None = None,
           overrides: dict | None = None, progress: bool = False):
    """A study (`tunelm search`) into `out` (default runs/search); returns its SearchResult
    (best value, params and trial directory, every trial, what was spent). Search settings
    go in the config or `overrides` ({"search.strategy": "random", "search.trials": 4})."""
    from .search import run_search

    cfg = _with_data(config, data, eval_data, overrides)
    return run_search(cfg, Path(out or "runs/search"), progress=progress)


def recommend(model: str, data=None, **request):
    """A complete starting config with a reason and source per value (`tunelm recommend`);
    `request` takes the fields of recommend.Request (method, gpu_memory, gpus, ...). The
    returned Recommendation gives `.config()` to pass to `train` or `search`."""
    from .recommend import Request
    from .recommend import recommend as _recommend

    return _recommend(Request(model=model, data=place_data(data, "train"), **request))


def evaluate(target: str | Path, data, **options) -> dict:
    """Score a run's (or a study's best) tuned model on `data` (`tunelm evaluate`); `options`
    are evaluate_run's (baseline, out, metric, max_examples, study_name)."""
    from .evaluate import evaluate_run

    return evaluate_run(target, place_data(data, "eval"), **options)


def diagnose(path: str | Path):
    """The verdict and findings on a run directory, metrics.jsonl or trainer_state.json."""
    from .diagnose import diagnose as _diagnose

    return _diagnose(path)


__all__ = ["TrainResult", "as_config", "diagnose", "evaluate", "place_data", "recommend",
           "search", "train"]
