"""How good is `tunelm recommend`'s learning rate? A sweep on two tasks, on the embedded SmolLM2.

For each task, the recommended config (from `recommend(...)` on that task's training file) is run
at five learning rates over two decades and at the recommended rate, everything else fixed. On
this CPU every run is capped at the same number of steps (the cap is the only change to the
recommended config, and it is the same for all six runs).

- contracts (the demo task): exact match of the best checkpoint; target: the recommended run
  within 2 points of the sweep's best.
- docstrings (natural text, Python's standard-library docstrings, eval loss well above zero):
  target: the recommended run within 2% relative eval loss of the sweep's best.

    .venv/bin/python benchmarks/lr_sweep.py          # about 35 minutes on a 2-core CPU
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
GRID = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]


def task_data(task: str, work: Path) -> dict[str, str]:
    from tunelm.tasks import contracts, docstrings

    if task == "contracts":
        return contracts.write_dataset(work / task, train=240, eval=60, seed=0)
    return docstrings.write_dataset(work / task, train=240, eval=48, seed=0)


def run(cfg_dict: dict, lr: float, out: Path, base, tok) -> dict:
    from tunelm.config import from_dict
    from tunelm.errors import TrainingError
    from tunelm.runner import run_trial

    d = json.loads(json.dumps(cfg_dict))
    d["train"]["learning_rate"] = lr
    cfg = from_dict(d)
    start = time.time()
    try:
        result = run_trial(cfg, out, loaded=(base, tok), progress=False)
    except TrainingError as exc:  # a diverged run is a data point, not a crash
        result = exc.result
    task = result.get("task_metrics") or {}
    return {"learning_rate": lr, "best_eval_loss": result["best_eval_loss"],
            "exact_match": task.get("exact_match"), "stop_reason": result["stop_reason"],
            "seconds": round(time.time() - start, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--tasks", default="docstrings,contracts")
    args = parser.parse_args()

    import logging
    import warnings

    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    logging.getLogger("tunelm").setLevel(logging.WARNING)
    from tunelm.base_model import load_base_model
    from tunelm.recommend import Request, recommend

    record = {"steps": args.steps, "grid": GRID, "tasks": {}}
    out_path = ROOT / "benchmarks" / "data" / "lr_sweep.json"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base = tok = None
        for task in args.tasks.split(","):
            paths = task_data(task, work)
            rec = recommend(Request(model="smollm2-135m", data=paths["train"], gpus=0))
            cfg = rec.config_dict()
            cfg["data"]["eval"] = paths["eval"]
            cfg["data"]["max_eval_examples"] = 24
            cfg["data"]["max_length"] = min(cfg["data"]["max_length"], 256)
            cfg["train"]["max_steps"] = args.steps  # the CPU cap, the same for every run
            cfg["train"]["eval_steps"] = args.steps // 2
            cfg["eval"] = ({"metric": "json", "max_examples": 40, "batch_size": 20}
                           if task == "contracts" else {"metric": "none"})
            if base is None:
                from tunelm.config import from_dict

                base, tok, _ = load_base_model(from_dict(cfg).model, "fp32", "cpu")
            rec_lr = rec.advice["train.learning_rate"].value
            rows = []
            for lr in GRID + [rec_lr]:
                row = run(cfg, lr, work / f"{task}-{lr:g}", base, tok)
                row["recommended"] = lr == rec_lr
                rows.append(row)
                print(f"{task} lr {lr:.3g}: best eval loss {row['best_eval_loss']}, exact match "
                      f"{row['exact_match']}, {row['stop_reason']}, {row['seconds']} s", flush=True)
            sweep = [r for r in rows if not r["recommended"]]
            ours = rows[-1]
            losses = [r["best_eval_loss"] for r in sweep if r["best_eval_loss"] is not None]
            summary = {"recommended_lr": rec_lr, "config": cfg, "runs": rows}
            best_loss = min(losses)
            summary["relative_regret_eval_loss"] = round(
                (ours["best_eval_loss"] - best_loss) / best_loss, 4)
            if task == "contracts":
                best_em = max(r["exact_match"] or 0.0 for r in sweep)
                summary["exact_match_gap_points"] = round(100 * (best_em - ours["exact_match"]), 1)
            record["tasks"][task] = summary
            # the temporary directory is not worth recording: name it <work>
            out_path.write_text(json.dumps(record, indent=2).replace(str(work), "<work>") + "\n")
            print(json.dumps({k: v for k, v in summary.items() if k not in ("config", "runs")}),
                  flush=True)
    print(f"written to {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
