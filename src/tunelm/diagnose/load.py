"""Read a run's metrics into a MetricsTable, from whatever the user points at:

- a tunelm trial directory (its `metrics.jsonl`, with `config.yaml` and `result.json` beside it);
- a `metrics.jsonl` file;
- a Hugging Face `trainer_state.json`, as every Trainer-based tool writes it (Transformers, TRL,
  Axolotl, LLaMA-Factory): its `log_history` holds the train and eval logs;
- a checkpoint directory holding one, or an output directory of `checkpoint-N` directories
  (the latest one is read, or the top-level `trainer_state.json` if it is at least as recent).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from ..errors import BadInputError
from .metrics import EvalRow, MetricsTable, TrainRow

log = logging.getLogger("tunelm")

ACCEPTED = (
    "a tunelm trial directory (with metrics.jsonl), a Trainer output or checkpoint directory "
    "(with trainer_state.json or checkpoint-N/trainer_state.json), or a trainer_state.json or "
    "metrics.jsonl file"
)
TUNELM_HPARAMS = {  # config.yaml section.field -> MetricsTable.hparams key
    ("train", "learning_rate"): "learning_rate", ("train", "warmup_ratio"): "warmup_ratio",
    ("train", "epochs"): "epochs", ("train", "max_steps"): "max_steps",
    ("train", "early_stopping_patience"): "early_stopping_patience",
    ("train", "max_grad_norm"): "max_grad_norm", ("train", "weight_decay"): "weight_decay",
    ("lora", "dropout"): "dropout", ("model", "method"): "method",
    ("train", "batch_size"): "batch_size", ("train", "grad_accum"): "grad_accum",
}


class DiagnoseInputError(BadInputError):
    """The path given to diagnose is missing or not a run's metrics (exit code 2)."""


def load_table(path: str | Path) -> MetricsTable:
    """The metrics of the run at `path` (see the module docstring for what is accepted)."""
    given = Path(path).expanduser()
    if not given.exists():
        raise DiagnoseInputError(f"{path} does not exist; give {ACCEPTED}")
    target = _pick_file(given) if given.is_dir() else given
    if target.name.endswith(".jsonl"):
        table = _from_metrics_jsonl(target)
    elif target.suffix == ".json":
        table = _from_trainer_state(target)
    else:
        raise DiagnoseInputError(f"{path} is neither a .json nor a .jsonl file; give {ACCEPTED}")
    if not table.train and not table.eval:
        raise DiagnoseInputError(
            f"{target} has no logged train loss or eval loss, so there is nothing to diagnose: "
            "the run may have stopped before its first log (Trainer logs every logging_steps "
            "steps, 500 by default; set logging_steps=10)"
        )
    log.debug("diagnose: %s (%s), %d train rows, %d eval rows", target, table.kind,
              len(table.train), len(table.eval))
    return table


def _checkpoint_step(p: Path) -> int:
    return int(p.parent.name.rsplit("-", 1)[1])


def _pick_file(d: Path) -> Path:
    if (d / "metrics.jsonl").is_file():
        return d / "metrics.jsonl"
    checkpoints = sorted(
        (p for p in d.glob("checkpoint-*/trainer_state.json")
         if re.fullmatch(r"checkpoint-\d+", p.parent.name)),
        key=_checkpoint_step,
    )
    top = d / "trainer_state.json"
    if top.is_file():
        if not checkpoints or _global_step(top) >= _checkpoint_step(checkpoints[-1]):
            return top
    if checkpoints:
        return checkpoints[-1]
    hint = ""
    if (d / "trials").is_dir():
        hint = (f" It looks like a study directory: diagnose one of its trials, e.g. "
                f"tunelm diagnose {d / 'trials' / '0000'}")
    raise DiagnoseInputError(
        f"{d} has no metrics.jsonl, trainer_state.json or checkpoint-N/trainer_state.json; "
        f"give {ACCEPTED}.{hint}"
    )


def _global_step(path: Path) -> int:
    try:
        return int(json.loads(path.read_text(encoding="utf-8")).get("global_step") or 0)
    except (OSError, ValueError, AttributeError, TypeError):
        return -1  # unreadable: the checkpoint wins, and reading this one reports the problem


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DiagnoseInputError(f"{path} cannot be read ({exc.strerror}); give {ACCEPTED}") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise DiagnoseInputError(f"{path} is not valid JSON ({exc}); give {ACCEPTED}") from exc


def _num(x) -> float | None:
    """A logged value as a float: None stays None, and so does anything not a number."""
    if x is None or isinstance(x, bool):
        return None
    try:
        return float(x)  # also "NaN" / "Infinity", which some writers emit as strings
    except (TypeError, ValueError):
        return None


def _from_trainer_state(path: Path) -> MetricsTable:
    state = _read_json(path)
    history = state.get("log_history") if isinstance(state, dict) else None
    if not isinstance(history, list):
        raise DiagnoseInputError(
            f"{path} has no log_history list, so it is not a Trainer trainer_state.json; "
            f"give {ACCEPTED}"
        )
    entries = [e for e in history if isinstance(e, dict) and _num(e.get("step")) is not None]
    eval_key = _eval_key(entries)
    train, evals = [], []
    for e in entries:
        step = int(_num(e["step"]))
        if "loss" in e and _num(e["loss"]) is not None:
            train.append(TrainRow(step, _num(e["loss"]), _num(e.get("learning_rate")),
                                  _num(e.get("grad_norm")), _num(e.get("epoch"))))
        if eval_key and _num(e.get(eval_key)) is not None:
            evals.append(EvalRow(step, _num(e[eval_key])))
    hparams = {"epochs": _num(state.get("num_train_epochs")),
               "max_steps": _num(state.get("max_steps")) or None,
               "batch_size": _num(state.get("train_batch_size"))}
    early = (state.get("stateful_callbacks") or {}).get("EarlyStoppingCallback") or {}
    if isinstance(early, dict) and "args" in early:
        hparams["early_stopping_patience"] = early["args"].get("early_stopping_patience")
    return MetricsTable(train, evals, source=str(path), kind="trainer",
                        total_steps=int(hparams["max_steps"]) if hparams["max_steps"] else None,
                        hparams={k: v for k, v in hparams.items() if v is not None})


def _eval_key(entries: list[dict]) -> str | None:
    """`eval_loss`, or with several eval datasets the first `eval_<name>_loss` logged."""
    keys = [k for e in entries for k in e if k.startswith("eval_") and k.endswith("loss")]
    if "eval_loss" in keys:
        return "eval_loss"
    return keys[0] if keys else None


def _from_metrics_jsonl(path: Path) -> MetricsTable:
    train, evals = [], []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DiagnoseInputError(f"{path} cannot be read ({exc}); give {ACCEPTED}") from exc
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            if n == len(lines):  # a run still writing, or killed mid-line: keep what is whole
                log.warning("diagnose: %s line %d is cut short; ignoring it", path, n)
                continue
            raise DiagnoseInputError(f"{path} line {n} is not JSON ({exc}); give {ACCEPTED}") from exc
        if not isinstance(row, dict) or _num(row.get("step")) is None:
            raise DiagnoseInputError(
                f"{path} line {n}: expected an object with a step, as tunelm's metrics.jsonl "
                f"has, got {line[:80]!r}"
            )
        step = int(_num(row["step"]))
        if _num(row.get("train_loss")) is not None:
            train.append(TrainRow(step, _num(row["train_loss"]), _num(row.get("learning_rate")),
                                  _num(row.get("grad_norm")), _num(row.get("epoch"))))
        if _num(row.get("eval_loss")) is not None:
            evals.append(EvalRow(step, _num(row["eval_loss"])))
    hparams, total = _trial_settings(path.parent)
    return MetricsTable(train, evals, source=str(path), kind="tunelm", total_steps=total,
                        hparams=hparams)


def _trial_settings(trial_dir: Path) -> tuple[dict, int | None]:
    """Settings from the trial's config.yaml and planned steps from result.json, when there."""
    import yaml

    hparams: dict = {}
    total = None
    try:
        cfg = yaml.safe_load((trial_dir / "config.yaml").read_text(encoding="utf-8")) or {}
        for (section, name), key in TUNELM_HPARAMS.items():
            value = (cfg.get(section) or {}).get(name)
            if value is not None:
                hparams[key] = value
    except (OSError, yaml.YAMLError, AttributeError):
        pass  # a bare metrics.jsonl: recommendations fall back on what the logs show
    try:
        result = json.loads((trial_dir / "result.json").read_text(encoding="utf-8"))
        total = int(result["plan"]["total_steps"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return hparams, total

