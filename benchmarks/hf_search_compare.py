"""Side by side at equal wall-clock on the demo task: `tunelm search --strategy tpe` against
Transformers' `Trainer.hyperparameter_search(backend="optuna")` with a PEFT `model_init`.

Both get the same data (the contract task, 240 training and 60 held-out examples, eval loss on
16 of them), the same training settings (the recommended config for that data under the same CPU
cap as benchmarks/search_efficiency.py: 18 steps of batch 4, eval every 3 steps, cosine; the
Transformers side uses `tunelm.runner.training_arguments` for that config, so the optimizer,
schedule, clipping and evaluation match), the same space (learning rate log-uniform over a decade
each side of the recommended 1.32e-3, LoRA rank {8, 16, 32}, warmup ratio 0.03..0.1; weight
decay and dropout fixed at the recommended values), a TPE sampler with seed 0, and the same
wall-clock budget (8 minutes each, one after the other, never at the same time; both stop
starting trials once the time is up and let the running one finish).

What differs is each tool's own machinery, left at its defaults: tunelm loads the base model once
per worker and swaps adapters, runs the recommended config first, prunes with Hyperband (plus its
divergence guard), objective = best eval loss of the run, keeps the best adapter of each trial;
Transformers calls `model_init` (here: load SmolLM2 from tunelm's safetensors cache, wrap it in a
fresh LoRA) for every trial, prunes with Optuna's default MedianPruner, objective = the eval loss
of the last evaluation. tunelm's generation-based exact match is turned off (eval.metric none),
since the Transformers side computes none.

    .venv/bin/python benchmarks/hf_search_compare.py               # about 17 minutes
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(HERE))
OUT = HERE / "data" / "hf_search_compare.json"
MODEL_DIR = Path.home() / ".cache" / "tunelm" / "models" / "smollm2-135m-instruct"


def shared_config(work: Path) -> tuple[dict, dict]:
    """(the tunelm config both sides train with, the search space in tunelm's terms)."""
    from _grid import task_config
    from search_efficiency import CAP

    cfg, base = task_config("contracts", work, CAP)
    lr = base["train.learning_rate"]
    space = {
        "train.learning_rate": {"type": "float", "low": float(f"{lr / 10:.3g}"),
                                "high": float(f"{lr * 10:.3g}"), "log": True},
        "lora.r": {"type": "categorical", "choices": [8, 16, 32]},
        "train.warmup_ratio": {"type": "float", "low": 0.03, "high": 0.1},
    }
    cfg["eval"] = {"metric": "none"}
    cfg["search"] = {"space": space, "strategy": "tpe", "seed": 0}
    return cfg, space


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def trial_rows(study) -> list[dict]:
    from optuna.trial import TrialState

    rows = []
    for t in study.get_trials(deepcopy=False):
        seconds = None
        if t.datetime_start and t.datetime_complete:
            seconds = round((t.datetime_complete - t.datetime_start).total_seconds(), 1)
        evals = sorted(t.intermediate_values.items())
        rows.append({"number": t.number, "state": t.state.name, "value": t.value,
                     "params": t.user_attrs.get("params", t.params), "seconds": seconds,
                     "evals": [[s, round(v, 5)] for s, v in evals],
                     "best_eval_loss": min((v for _, v in evals if math.isfinite(v)),
                                           default=None),
                     "finished": t.state in (TrialState.COMPLETE, TrialState.PRUNED)})
    return rows


def summary(rows: list[dict], wall: float, cpu: float | None = None) -> dict:
    """Counts and bests of one side; `cpu` is the CPU seconds its process(es) used, a measure
    that the neighbours' load on a shared machine disturbs less than the wall clock."""
    done = [r for r in rows if r["finished"]]
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    best_any = [r["best_eval_loss"] for r in done if r["best_eval_loss"] is not None]
    return {
        "wall_seconds": round(wall, 1),
        "trials_finished": len(done),
        "trials_complete": len(complete),
        "trials_pruned": sum(r["state"] == "PRUNED" for r in rows),
        "trials_failed": sum(r["state"] == "FAIL" for r in rows),
        "trials_per_hour": round(3600 * len(done) / wall, 1),
        "cpu_seconds": None if cpu is None else round(cpu, 1),
        "trials_per_cpu_hour": None if not cpu else round(3600 * len(done) / cpu, 1),
        "best_objective": min((r["value"] for r in complete if r["value"] is not None),
                              default=None),
        "best_eval_loss_any_evaluation": min(best_any) if best_any else None,
        "median_trial_seconds": sorted(r["seconds"] for r in complete)[len(complete) // 2]
        if complete else None,
    }


def run_tunelm(cfg: dict, work: Path, minutes: float) -> dict:
    """`tunelm search` as a user runs it, in its own process."""
    import optuna
    import yaml

    path = work / "tunelm-search.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    study_dir = work / "tunelm-study"
    cmd = [str(ROOT / ".venv" / "bin" / "tunelm"), "search", str(path), "--strategy", "tpe",
           "--timeout", f"{minutes:g}", "--trials", "1000", "--out", str(study_dir)]
    load_before = _load()
    cpu_before = _children_cpu()
    started = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.time() - started
    cpu = _children_cpu() - cpu_before
    if proc.returncode != 0:
        raise SystemExit(f"tunelm search failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    study = optuna.load_study(study_name=study_dir.name,
                              storage=f"sqlite:///{study_dir / 'study.db'}")
    rows = trial_rows(study)
    return {"command": " ".join(cmd).replace(str(work), "<work>").replace(str(ROOT) + "/", ""),
            "load_before": load_before, "load_after": _load(),
            "summary": summary(rows, wall, cpu), "trials": rows}


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_hf(cfg_dict: dict, space: dict, work: Path, minutes: float) -> dict:
    """Trainer.hyperparameter_search(backend="optuna") with a PEFT model_init."""
    import optuna
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer

    from tunelm.config import from_dict
    from tunelm.data import Collator, ListDataset, prepare
    from tunelm.hf_args import lora_kwargs
    from tunelm.plan import plan_steps
    from tunelm.runner.trial import training_arguments

    cfg = from_dict(cfg_dict)
    tok = AutoTokenizer.from_pretrained(MODEL_DIR)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    data = prepare(tok, cfg.data, work / "hf-data")
    plan = plan_steps(cfg.train, len(data.train))
    args = training_arguments(cfg, plan, work / "hf-run", "fp32", "cpu")
    # The Trainer casts each hp_space value to the type of the argument it replaces: an int
    # warmup_steps would turn the sampled ratio into 0 steps. Start from the ratio (a float).
    args.warmup_steps = float(cfg.train.warmup_ratio)
    lr, ranks, warm = (space["train.learning_rate"], space["lora.r"]["choices"],
                       space["train.warmup_ratio"])
    loads = []

    def model_init(trial):
        # rank is a model setting, not a TrainingArguments field: it is sampled here (the
        # Trainer calls model_init(trial) before hp_space(trial) on every trial)
        r = trial.suggest_categorical("lora.r", ranks) if trial is not None else cfg.lora.r
        t0 = time.time()
        base = AutoModelForCausalLM.from_pretrained(MODEL_DIR, dtype=torch.float32)
        loads.append(round(time.time() - t0, 2))
        return get_peft_model(base, LoraConfig(**{**lora_kwargs(cfg.lora), "r": r}))

    def hp_space(trial):
        return {
            "learning_rate": trial.suggest_float("train.learning_rate", lr["low"], lr["high"],
                                                 log=True),
            # warmup_steps below 1 is a ratio of the total steps in Transformers 5
            "warmup_steps": trial.suggest_float("train.warmup_ratio", warm["low"], warm["high"]),
        }

    storage = f"sqlite:///{work / 'hf-study.db'}"
    load_before = _load()
    started, cpu_started = time.time(), time.process_time()
    trainer = Trainer(model_init=model_init, args=args, train_dataset=ListDataset(data.train),
                      eval_dataset=ListDataset(data.eval),
                      data_collator=Collator(tok.pad_token_id))
    init_seconds = time.time() - started
    best = trainer.hyperparameter_search(
        hp_space=hp_space, compute_objective=lambda metrics: metrics["eval_loss"],
        n_trials=1000, direction="minimize", backend="optuna", timeout=minutes * 60 - init_seconds,
        sampler=optuna.samplers.TPESampler(seed=0), storage=storage, study_name="hf")
    wall, cpu = time.time() - started, time.process_time() - cpu_started
    study = optuna.load_study(study_name="hf", storage=storage)
    rows = trial_rows(study)
    return {"call": "trainer.hyperparameter_search(hp_space, compute_objective=eval_loss, "
                    "n_trials=1000, backend='optuna', timeout=<8 min less Trainer init>, "
                    "sampler=TPESampler(seed=0))",
            "load_before": load_before, "load_after": _load(),
            "trainer_init_seconds": round(init_seconds, 1), "model_init_load_seconds": loads,
            "best_run": {"objective": best.objective, "hyperparameters": best.hyperparameters},
            "summary": summary(rows, wall, cpu), "trials": rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=8.0, help="wall-clock budget of each")
    parser.add_argument("--sides", default="tunelm,hf", help="tunelm, hf or both (in order)")
    args = parser.parse_args(argv)
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    if not sides or any(s not in ("tunelm", "hf") for s in sides):
        print(f"--sides must name tunelm and/or hf, got {args.sides!r}", file=sys.stderr)
        return 2
    if args.minutes <= 0:
        print(f"--minutes must be > 0, got {args.minutes:g}", file=sys.stderr)
        return 2
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("tunelm").setLevel(logging.WARNING)
    record = json.loads(OUT.read_text()) if OUT.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cfg, space = shared_config(work)
        record.update({"minutes": args.minutes, "space": space,
                       "config": json.loads(json.dumps(cfg).replace(str(work), "<work>"))})
        for side in sides:
            print(f"{side}: searching for {args.minutes:g} minutes ...", flush=True)
            result = (run_tunelm(cfg, work, args.minutes) if side == "tunelm"
                      else run_hf(cfg, space, work, args.minutes))
            record[side] = result
            OUT.write_text(json.dumps(record, indent=1) + "\n")
            print(f"{side}: {json.dumps(result['summary'])}", flush=True)
    print(f"written to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
