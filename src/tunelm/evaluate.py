"""`tunelm evaluate`: the tuned model (a run's best adapter, or a study's best trial's) and, with
`baseline`, the base model, scored on a held-out file the user curated: eval loss and task metrics
side by side, per-example outputs saved for review.

    result = evaluate_run("runs/contracts", "reviewed.csv", baseline=True)
    result["models"]["tuned"]["eval_loss"], result["models"]["base"]["task"]["exact_match"]

Eval loss is computed as the Trainer's evaluation computes it, so on a run's own eval file it
matches the run's recorded eval loss: batches of `train.batch_size` in file order, each batch's
loss the sum of its completion-token losses over its count of predicted label tokens, and the
mean of those batch losses weighted by batch size.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

from .base_model import load_best, load_tuned
from .config import Config, load_config
from .data import (
    IGNORE,
    Encoded,
    Record,
    detect_format,
    encode,
    ensure_chat_template,
    read_records,
    to_messages,
)
from .errors import ConfigError, DataError, ModelError
from .files import write_jsonl_atomic, write_text_atomic
from .search.location import is_storage_url
from .tasks.metrics import SHARES, availability_problems, form_problem

log = logging.getLogger("tunelm.evaluate")


@dataclass(frozen=True)
class Target:
    """What `evaluate` scores: a run directory, and the study and trial it came from, if any."""

    run_dir: Path
    cfg: Config
    study: str | None = None
    trial: int | None = None


def resolve(target: str, study_name: str | None = None) -> Target:
    """A run directory (config.yaml and best/), a study directory (study.db), or a storage URL
    with `study_name`: the run to score. Raises ModelError or ConfigError (exit 2)."""
    path = Path(target).expanduser()
    study = trial = None
    if is_storage_url(target) or (path / "study.db").exists():
        run_dir, study, trial = _best_trial_dir(target, path, study_name)
    elif (path / "config.yaml").exists():
        run_dir = path
    elif not path.exists():
        raise ModelError(f"RUN|STUDY {target}: no such directory; give a run directory "
                         "(tunelm train --out DIR) or a study directory (tunelm search --out DIR)")
    else:
        raise ModelError(f"RUN|STUDY {target}: neither a run directory (it has no config.yaml) "
                         "nor a study directory (it has no study.db)")
    if not (run_dir / "config.yaml").exists():
        raise ModelError(f"run directory {run_dir} has no config.yaml")
    best = run_dir / "best"
    if not best.is_dir() or not any(best.glob("*.safetensors")):
        raise ModelError(
            f"{run_dir} has no saved adapter or weights in best/: the run kept none "
            "(train.save_best false, it failed before its first evaluation, or a study deleted "
            "it under search.keep_top); run it again with train.save_best true"
        )
    return Target(run_dir, load_config(run_dir / "config.yaml"), study, trial)


def _best_trial_dir(target: str, path: Path, study_name: str | None):
    from optuna.trial import TrialState

    from .search.opener import load_study

    storage = target if is_storage_url(target) else None
    if storage and not study_name:
        raise ConfigError("a storage URL needs --study NAME (the study to read)")
    study, _ = load_study(path if storage is None else storage, storage, study_name)
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        raise ConfigError(f"study {study.study_name!r} has no finished trial yet; run "
                          "tunelm search until one finishes, or evaluate a run directory")
    best = study.best_trial
    recorded = best.user_attrs.get("trial_dir")
    if not recorded:
        raise ModelError(f"study {study.study_name!r}: its best trial ({best.number}) recorded "
                         "no trial directory")
    run_dir = Path(recorded)
    if not run_dir.is_absolute() and not run_dir.exists() and storage is None:
        run_dir = path / "trials" / run_dir.name  # recorded relative to another directory
    return run_dir, study.study_name, best.number


# ----------------------------------------------------------------------------------------------
# Data and eval loss
# ----------------------------------------------------------------------------------------------


def encode_indexed(tokenizer, records: list[Record], data_cfg) -> list[tuple[int, Encoded]]:
    """(record index, encoded example) for every record that keeps a label token after
    truncation at data.max_length (the others are skipped, as a run skips them)."""
    ensure_chat_template(tokenizer)
    out = []
    for i, rec in enumerate(records):
        fmt = data_cfg.format if data_cfg.format != "auto" else detect_format(rec, data_cfg)
        e = encode(tokenizer, to_messages(rec, fmt, data_cfg), data_cfg.completion_only)
        ids, labels = e.input_ids[: data_cfg.max_length], e.labels[: data_cfg.max_length]
        if any(label != IGNORE for label in labels[1:]):
            out.append((i, Encoded(ids, labels)))
    if records and not out:
        raise DataError(f"every one of the {len(records)} examples lost all its completion "
                        f"tokens to truncation at data.max_length={data_cfg.max_length}")
    return out


def eval_loss(model, tokenizer, examples: list[Encoded], batch_size: int, device: str,
              precision: str) -> tuple[float, list[float]]:
    """(the Trainer's eval loss, each example's mean completion-token loss)."""
    import torch
    import torch.nn.functional as F

    from .data import Collator
    from .runner.task_eval import autocast

    collate = Collator(tokenizer.pad_token_id)
    was_training = model.training
    model.eval()
    batch_losses, sizes, per_example = [], [], []
    try:
        for i in range(0, len(examples), batch_size):
            batch = {k: v.to(device) for k, v in collate(examples[i : i + batch_size]).items()}
            with torch.no_grad(), autocast(device, precision):
                logits = model(input_ids=batch["input_ids"],
                               attention_mask=batch["attention_mask"]).logits
            labels = batch["labels"]
            tok_loss = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), labels[:, 1:],
                                       ignore_index=IGNORE, reduction="none")
            counted = labels[:, 1:] != IGNORE
            sums = (tok_loss * counted).sum(dim=1)
            per_example += (sums / counted.sum(dim=1).clamp(min=1)).tolist()
            batch_losses.append((sums.sum() / counted.sum()).item())  # over the batch's tokens
            sizes.append(len(labels))
    finally:
        model.train(was_training)
    mean = sum(b * n for b, n in zip(batch_losses, sizes)) / sum(sizes)
    return mean, per_example


# ----------------------------------------------------------------------------------------------
# Scoring
# ----------------------------------------------------------------------------------------------


def _score(model, tok, cfg, records, examples, eval_cfg, device, precision):
    """(figures, generated rows, {record index: example loss}) of one model."""
    from .runner.task_eval import evaluate_task

    started = time.time()
    loss, per_example = eval_loss(model, tok, [e for _, e in examples], cfg.train.batch_size,
                                  device, precision)
    task, rows = evaluate_task(model, tok, records, cfg.data, eval_cfg, device, precision)
    out = {"eval_loss": loss, "task": task, "seconds": round(time.time() - started, 1)}
    return out, rows, dict(zip((i for i, _ in examples), per_example))


# ----------------------------------------------------------------------------------------------
# The command
# ----------------------------------------------------------------------------------------------


def evaluate_run(target: str | Path, data: str | Path, *, baseline: bool = False,
                 out: str | Path | None = None, metric: str | None = None,
                 max_examples: int | None = None, study_name: str | None = None,
                 tuned: bool = True) -> dict:
    """Score the tuned model of `target` (and the base model with `baseline`) on `data`; write
    evaluation.json and evaluation_predictions.jsonl to `out` (default RUN/eval-<data stem>/).

    `metric` overrides the run's eval.metric; `max_examples` caps how many examples are
    generated for the task metric (default: all of them; eval loss always uses all). `tuned`
    False (with `baseline`): the base model alone, scored as the run would score it (its
    config, its eval settings), where the tuned model's figures are known already (a trial's
    own final score: `demo`)."""
    if not (tuned or baseline):
        raise ValueError("evaluate_run scores the tuned model, the base model or both")
    if metric is not None and form_problem(metric):
        raise ConfigError(form_problem(metric).replace("eval.metric", "--metric", 1))
    if max_examples is not None and max_examples < 1:
        raise ConfigError(f"--max-examples must be >= 1, got {max_examples}")
    started = time.time()
    tgt = resolve(str(target), study_name)
    cfg = tgt.cfg
    records = read_records(str(data), cfg.data)  # DataError (exit 2): missing, empty, malformed
    out_dir = Path(out) if out else tgt.run_dir / f"eval-{Path(data).stem}"
    eval_cfg = dataclasses.replace(cfg.eval, metric=metric or cfg.eval.metric,
                                   max_examples=min(max_examples or len(records), len(records)))
    missing = availability_problems(eval_cfg.metric, eval_cfg.metric_path)
    if missing:  # before the model loads
        raise ConfigError(missing)
    model, tok, device, precision = load_tuned(cfg, tgt.run_dir / "best")
    examples = encode_indexed(tok, records, cfg.data)
    log.info("evaluate | %s | %d examples from %s (%d with completion tokens) | device %s",
             tgt.run_dir, len(records), data, len(examples), device)
    scored, outputs, losses = {}, {}, {}
    full = cfg.model.method == "full"
    if baseline:
        import contextlib

        # LoRA: the same model with its adapter switched off; full: scored before the weights load
        ctx = contextlib.nullcontext() if full else model.disable_adapter()
        with ctx:
            scored["base"], outputs["base"], losses["base"] = _score(
                model, tok, cfg, records, examples, eval_cfg, device, precision)
        log.info("base model | eval loss %.4f | %s", scored["base"]["eval_loss"],
                 _brief(scored["base"]["task"]))
    if tuned:
        if full:
            load_best(model, tgt.run_dir / "best", "full")
        scored["tuned"], outputs["tuned"], losses["tuned"] = _score(
            model, tok, cfg, records, examples, eval_cfg, device, precision)
        log.info("tuned model | eval loss %.4f | %s", scored["tuned"]["eval_loss"],
                 _brief(scored["tuned"]["task"]))
    shown = "tuned" if tuned else "base"
    metric_used = scored[shown]["task"].get("metric", "none")
    result = {
        "run": str(tgt.run_dir), "study": tgt.study, "trial": tgt.trial,
        "model": cfg.model.name, "method": cfg.model.method, "data": str(data),
        "examples": len(records), "examples_with_labels": len(examples),
        "generated": len(outputs[shown]), "metric": metric_used,
        "device": device, "precision": precision, "batch_size": cfg.train.batch_size,
        "models": scored, "comparison": comparison(scored),
        "out": str(out_dir), "wall_seconds": round(time.time() - started, 1),
    }
    rows = prediction_rows(records, outputs, losses, metric_used)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl_atomic(out_dir / "evaluation_predictions.jsonl", rows)
    write_text_atomic(out_dir / "evaluation.json", json.dumps(result, indent=2) + "\n")
    return result


def comparison(scored: dict) -> list[dict]:
    """The side-by-side table as data: one row per figure, base and tuned values (None where
    absent: a model not scored), and the change."""
    names = [("eval loss", ("eval_loss",)), ("exact match", ("task", "exact_match")),
             ("parse rate", ("task", "parse_rate"))]
    task = (scored.get("tuned") or scored["base"])["task"]
    fields = task.get("field_accuracy") or {}
    names += [(f"  {k}", ("task", "field_accuracy", k)) for k in fields]
    others = [k for k, v in task.items() if k not in (
        "exact_match", "parse_rate", "n", "metric") and isinstance(v, (int, float))]
    names += [(k, ("task", k)) for k in others]  # rougeL, chrf, accuracy, a function's scores
    rows = []
    for label, keys in names:
        values = {m: _dig(scored.get(m), keys) for m in ("base", "tuned")}
        if values["tuned"] is None and values["base"] is None:
            continue
        change = (values["tuned"] - values["base"]
                  if None not in (values["tuned"], values["base"]) else None)
        rows.append({"figure": label.strip(), "indent": label != label.strip(),
                     "base": values["base"], "tuned": values["tuned"], "change": change,
                     "kind": _kind(keys)})
    return rows


def _kind(keys: tuple) -> str:
    """How a figure is shown: a loss, a share of the examples (a percentage), or a score."""
    if keys == ("eval_loss",):
        return "loss"
    return "share" if keys[1] in SHARES or keys[1] == "field_accuracy" else "score"


def prediction_rows(records: list[Record], outputs: dict, losses: dict, metric: str) -> list:
    """One row per example: where it came from, prompt, reference, and per model its output,
    loss and (with a task metric) whether it matched."""
    from .tasks.metrics import offered, score

    matches = "exact_match" in (offered(metric) or ())  # a per-example yes/no
    rows = []
    for i, rec in enumerate(records):
        row = {"index": i, "source": rec.where}
        for m in ("tuned", "base"):
            if m not in outputs:
                continue
            gen = outputs[m][i] if i < len(outputs[m]) else None
            if gen is not None:
                row.setdefault("prompt", gen["prompt"])
                row.setdefault("reference", gen["reference"])
                row[f"output_{m}"] = gen["prediction"]
                match = (score(metric, [gen["prediction"]], [gen["reference"]])
                         .get("exact_match") if matches else None)
                row[f"match_{m}"] = None if match is None else bool(match)
            loss = losses[m].get(i)
            row[f"loss_{m}"] = None if loss is None or not math.isfinite(loss) else loss
        rows.append(row)
    return rows


def _dig(d, keys):
    for k in keys:
        if not isinstance(d, dict) or d.get(k) is None:
            return None
        d = d[k]
    return d


def _brief(task: dict) -> str:
    from .tasks.metrics import brief

    return brief(task) or "no task metric"
