"""Data parallel on the CPU: the tiny model trained on 2 gloo ranks (torchrun, one thread each)
against 1 rank (one thread, then two), at the same effective batch, through `tunelm train`.

Reports tokens/s of the whole trial and per rank, and what the second rank costs: the gradient
all-reduce and the process start. Writes benchmarks/data/ddp_cpu.json.

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/ddp_cpu.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from _train_run import timed_train

ROOT = Path(__file__).resolve().parents[1]
STEPS, BATCH = 24, 4
SETUPS = [  # (name, ranks, threads per rank, accumulation): effective batch 8 in each
    ("1 rank x 1 thread", 1, 1, 2),
    ("1 rank x 2 threads", 1, 2, 2),
    ("2 ranks x 1 thread", 2, 1, 1),
]


def run(name: str, ranks: int, threads: int, accum: int, tmp: Path) -> dict:
    out = tmp / name.replace(" ", "_")
    cmd = [sys.executable, "-m", "tunelm", "-q", "train", str(ROOT / "presets/tiny.yaml"),
           "--devices", str(ranks), "--out", str(out),
           "--set", f"train.max_steps={STEPS}", "--set", f"train.batch_size={BATCH}",
           "--set", f"train.grad_accum={accum}", "--set", "train.eval_steps=1000",
           "--set", "eval.max_examples=0"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT / "src")}
    _, figures, wall = timed_train(cmd, env, out, ranks)
    return {"setup": name, "ranks": ranks, "threads_per_rank": threads, "grad_accum": accum,
            **figures, "command_seconds": round(wall, 1)}


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for setup in SETUPS:
            rows.append(run(*setup, Path(tmp)))
            print(json.dumps(rows[-1]))
    (ROOT / "benchmarks/data").mkdir(exist_ok=True)
    (ROOT / "benchmarks/data/ddp_cpu.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"{'setup':<22}{'tok/s':>9}{'tok/s/rank':>12}{'train s':>9}{'command s':>11}")
    for r in rows:
        print(f"{r['setup']:<22}{r['tokens_per_s']:>9.0f}{r['tokens_per_s_per_rank']:>12.0f}"
              f"{r['train_seconds']:>9.1f}{r['command_seconds']:>11.1f}")


if __name__ == "__main__":
    main()
