"""How far do `tunelm lr-find`'s suggestions land from the best rate of a real sweep on the demo task?

Runs the range test on presets/demo.yaml (the embedded SmolLM2-135M-Instruct, LoRA r=16 alpha=32,
batch 4, the generated contract-extraction task) and compares both suggestions (steepest / 3, and
fastai's valley rule) with the learning-rate sweep recorded by `benchmarks/lr_sweep.py` on the same
model, task and data (benchmarks/data/lr_sweep.json, tasks.contracts). The range test records its
raw losses, so the same curve is also re-read with other smoothing factors and no back-off (pure
functions, no training) to show how much of the answer is the rule rather than the model.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/lr_find_demo.py --probe   # seconds per step
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/lr_find_demo.py           # the measurement
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
SWEEP = ROOT / "benchmarks" / "data" / "lr_sweep.json"
OUT = ROOT / "benchmarks" / "data" / "lr_find_demo.json"


def sweep_reference() -> dict:
    """The recorded sweep on the contract task: its grid, and the best rate by each measure."""
    task = json.loads(SWEEP.read_text())["tasks"]["contracts"]
    grid = [r for r in task["runs"] if not r.get("recommended")]
    by_em = max(grid, key=lambda r: r["exact_match"])
    by_loss = min(grid, key=lambda r: r["best_eval_loss"])
    return {
        "source": str(SWEEP.relative_to(ROOT)),
        "runs": [{k: r[k] for k in ("learning_rate", "exact_match", "best_eval_loss",
                                     "recommended")} for r in task["runs"]],
        "steps": json.loads(SWEEP.read_text())["steps"],
        "best_by_exact_match": by_em["learning_rate"],
        "best_by_eval_loss": by_loss["learning_rate"],
        "recommended": task["recommended_lr"],
        "config_differences": "the sweep ran the recommended config (weight decay 0.1, "
        "max_length 192) for 30 steps per rate; lr-find uses presets/demo.yaml (weight decay "
        "0.01, max_length 512); model, LoRA r/alpha, batch 4 and the data are the same",
    }


def reread(curve: list[dict], steps: int) -> list[dict]:
    """The same raw losses under other smoothing factors, with and without the back-off."""
    from tunelm.lr_find import analyze

    points = [p for p in curve if p["loss"] is not None]
    lrs, losses = [p["lr"] for p in points], [p["loss"] for p in points]
    rows = []
    for beta in (0.9, 0.95, 0.98):
        a = analyze(lrs, losses, planned_steps=steps, beta=beta, backoff=1.0)
        rows.append({"beta": beta,
                     "steepest_point": a.steepest.lr if a.steepest else None,
                     "steepest_over_3": a.steepest.lr / 3 if a.steepest else None,
                     "valley": a.valley.lr if a.valley else None})
    return rows


def ratios(lr: float | None, ref: dict) -> dict:
    if lr is None:
        return {}
    return {"vs_best_exact_match": round(lr / ref["best_by_exact_match"], 3),
            "vs_best_eval_loss": round(lr / ref["best_by_eval_loss"], 3),
            "log10_vs_best_exact_match": round(math.log10(lr / ref["best_by_exact_match"]), 2)}


def step_seconds(log_path: Path) -> float | None:
    """Mean seconds per step, from the timestamps of the step lines in lr_find.log."""
    stamps = []
    for line in log_path.read_text().splitlines():
        if " step " in line and "| lr " in line:
            stamps.append(datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp())
    if len(stamps) < 2:
        return None
    return (stamps[-1] - stamps[0]) / (len(stamps) - 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-lr", type=float, default=1e-6)
    parser.add_argument("--max-lr", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--probe", action="store_true",
                        help="10 steps at harmless rates, to time a step; nothing is recorded")
    parser.add_argument("--keep", help="also keep lr_find.json/png/log in this directory")
    args = parser.parse_args()

    import logging
    import warnings

    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    logging.getLogger("tunelm").setLevel(logging.INFO)
    import torch

    from tunelm.config import load_config
    from tunelm.lr_find import run_lr_find

    cfg = load_config(ROOT / "presets" / "demo.yaml")
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.keep) if args.keep else Path(tmp)
        if args.probe:
            run_lr_find(cfg, out, min_lr=1e-7, max_lr=1e-6, steps=10, progress=False)
            print(f"probe: {step_seconds(out / 'lr_find.log'):.1f} s per step "
                  f"({time.time() - started:.0f} s in all, with loading)")
            return 0
        record = run_lr_find(cfg, out, min_lr=args.min_lr, max_lr=args.max_lr,
                             steps=args.steps, progress=False)
        per_step = step_seconds(out / "lr_find.log")
    ref = sweep_reference()
    steep = record["suggestions"]["steepest"]
    valley = record["suggestions"]["valley"]
    result = {
        "command": "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/lr_find_demo.py "
                   f"--min-lr {args.min_lr:g} --max-lr {args.max_lr:g} --steps {args.steps}",
        "machine": f"{torch.get_num_threads()} torch thread(s), CPU",
        "date": time.strftime("%Y-%m-%d"),
        "wall_seconds": round(time.time() - started, 1),
        "seconds_per_step": round(per_step, 2) if per_step else None,
        "suggestion_steepest_over_3": steep["lr"] if steep else None,
        "steepest_point": steep["point_lr"] if steep else None,
        "valley": valley["lr"] if valley else None,
        "ratios": {"steepest_over_3": ratios(steep["lr"] if steep else None, ref),
                   "steepest_point": ratios(steep["point_lr"] if steep else None, ref),
                   "valley": ratios(valley["lr"] if valley else None, ref)},
        "sweep": ref,
        "other_smoothing": reread(record["curve"], record["steps"]),
        "lr_find": record,
    }
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("lr_find", "sweep")},
                     indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
