"""Recording a grid: every configuration of a small grid run once on the embedded SmolLM2, with its
whole learning curve and its cost kept, so that search strategies can be replayed against it.

The grid of a task is built around the config `tunelm recommend` gives for that task's training
file (as `lr_sweep.py` does): 6 learning rates (recommended x 10^(k/2), k = -3..2, which holds the
protocol's three probes and its decade-lower retry) x rank {r, 2r} x warmup ratio {0.05, 0.1};
everything else is the recommended config under one CPU cap (steps, eval cadence, eval sizes) that
is the same for every configuration.

The recording is resumable: configurations already in the output file are skipped, and the file
is rewritten after every run.
"""

from __future__ import annotations

import itertools
import json
import shutil
import time
from pathlib import Path

LR_EXPONENTS = (-3, -2, -1, 0, 1, 2)  # learning rate = recommended x 10^(k/2)
WARMUPS = (0.05, 0.1)
LR = "train.learning_rate"
RANK = "lora.r"
WARMUP = "train.warmup_ratio"


def lr_values(recommended: float) -> list[float]:
    """The grid's learning rates, rounded to 3 significant digits exactly as the protocol rounds
    its probes (`Protocol._lr_points`), so that every probe is a grid point."""
    return [float(f"{recommended * 10 ** (k / 2):.3g}") for k in LR_EXPONENTS]


def grid_params(recommended: dict) -> list[dict]:
    """The 24 parameter sets around `recommended` ({LR, RANK, WARMUP})."""
    ranks = (recommended[RANK], 2 * recommended[RANK])
    return [{LR: lr, RANK: r, WARMUP: w}
            for lr, r, w in itertools.product(lr_values(recommended[LR]), ranks, WARMUPS)]


def key_of(params: dict) -> str:
    return f"lr={params[LR]:g} r={params[RANK]} warmup={params[WARMUP]:g}"


def _sig(x, digits: int = 5):
    return None if x is None else float(f"{x:.{digits}g}")


def task_config(task: str, work: Path, cap: dict) -> tuple[dict, dict]:
    """(the recommended config of `task`, capped for this CPU; the recommended {LR, RANK, WARMUP})."""
    from lr_sweep import task_data

    from tunelm.recommend import Request, recommend

    paths = task_data(task, work)
    rec = recommend(Request(model="smollm2-135m", data=paths["train"], gpus=0))
    cfg = rec.config_dict()
    cfg["data"]["eval"] = paths["eval"]
    cfg["data"]["max_eval_examples"] = cap["max_eval_examples"]
    cfg["data"]["max_length"] = min(cfg["data"]["max_length"], cap["max_length"])
    cfg["train"]["max_steps"] = cap["steps"]
    cfg["train"]["eval_steps"] = cap["eval_steps"]
    cfg["eval"] = ({"metric": "json", "max_examples": cap["em_examples"],
                    "batch_size": cap["em_examples"]}
                   if task == "contracts" else {"metric": "none"})
    base = {LR: cfg["train"]["learning_rate"], RANK: cfg["lora"]["r"],
            WARMUP: cfg["train"]["warmup_ratio"]}
    return cfg, base


def run_config(cfg_dict: dict, params: dict, out: Path, loaded) -> dict:
    """One grid point: train, and return its record (curves, best eval loss, EM, cost)."""
    from tunelm.config import from_dict
    from tunelm.errors import TrainingError
    from tunelm.runner import run_trial

    d = json.loads(json.dumps(cfg_dict))
    for path, value in params.items():
        section, name = path.split(".", 1)
        d[section][name] = value
    cfg = from_dict(d)
    start, cpu_start = time.time(), time.process_time()
    try:
        result = run_trial(cfg, out, loaded=loaded, progress=False)
    except TrainingError as exc:  # a diverged run is a data point, not a crash
        result = exc.result or {}
    seconds, cpu_seconds = time.time() - start, time.process_time() - cpu_start
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [[r["step"], _sig(r["eval_loss"])] for r in rows if "eval_loss" in r]
    train = [[r["step"], _sig(r.get("train_loss")), _sig(r.get("grad_norm"), 4)]
             for r in rows if "train_loss" in r]
    task = result.get("task_metrics") or {}
    return {
        "key": key_of(params),
        "params": params,
        "planned_steps": cfg.train.max_steps,
        "final_step": result.get("final_step"),
        "stop_reason": result.get("stop_reason"),
        "best_eval_loss": _sig(result.get("best_eval_loss")),
        "best_step": result.get("best_step"),
        "exact_match": task.get("exact_match"),
        "parse_rate": task.get("parse_rate"),
        "seconds": round(seconds, 1),  # wall: training, evaluations, generation, saving
        "cpu_seconds": round(cpu_seconds, 1),  # this process's CPU time over the same span
        "train_seconds": result.get("train_seconds"),
        "evals": evals,
        "train": train,  # [step, train loss, grad norm]
    }


def record(task: str, out_path: Path, work: Path, cap: dict, loaded_holder: dict,
           limit: int | None = None, echo=print) -> dict:
    """Run every grid point of `task` not yet in `out_path`; rewrite the file after each run."""
    from tunelm.base_model import load_base_model
    from tunelm.config import from_dict

    cfg, base = task_config(task, work, cap)
    data = json.loads(out_path.read_text()) if out_path.exists() else {}
    if data and data.get("cap") != cap:
        raise SystemExit(f"{out_path} was recorded under another cap ({data.get('cap')}); "
                         f"move it away or run with that cap")
    data.update({"task": task, "cap": cap, "recommended": base,
                 "grid": {"learning_rates": lr_values(base[LR]),
                          "ranks": [base[RANK], 2 * base[RANK]], "warmups": list(WARMUPS)},
                 "config": json.loads(json.dumps(cfg).replace(str(work), "<work>"))})
    runs = data.setdefault("runs", [])
    done = {r["key"] for r in runs}
    todo = [p for p in grid_params(base) if key_of(p) not in done]
    for params in todo[:limit]:
        if "loaded" not in loaded_holder:  # the base model is loaded once, for both tasks
            loaded_holder["loaded"] = load_base_model(from_dict(cfg).model, "fp32", "cpu")[:2]
        trial_dir = work / task / key_of(params).replace(" ", "_")
        row = run_config(cfg, params, trial_dir, loaded_holder["loaded"])
        shutil.rmtree(trial_dir, ignore_errors=True)  # its adapter is not needed: keep /tmp small
        runs.append(row)
        out_path.write_text(json.dumps(data, indent=1) + "\n")
        echo(f"{task} [{len(runs)}/24] {row['key']}: best eval loss {row['best_eval_loss']} "
             f"@ {row['best_step']}, EM {row['exact_match']}, {row['stop_reason']}, "
             f"{row['seconds']} s")
    if not out_path.exists():
        out_path.write_text(json.dumps(data, indent=1) + "\n")
    return data
