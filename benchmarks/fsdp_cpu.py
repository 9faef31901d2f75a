"""Sharded against data parallel on the CPU: full fine-tuning of a small random Llama (12.7M
parameters: hidden 512, 4 layers) on 1 rank, on 2 gloo ranks with DDP (each rank a whole copy)
and on 2 gloo ranks with FSDP2 (each rank half of the weights, gradients and AdamW state), at the
same effective batch, one thread per rank, through `tunelm train`.

Reports tokens/s of the trial and per rank, and rank 0's peak resident memory (the ranks are
symmetric: FSDP gives each the same share). Writes benchmarks/data/fsdp_cpu.json (and
fsdp_cpu_memory.json with --memory: a larger model at micro-batch 1).

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/fsdp_cpu.py [--memory]
        [--malloc-threshold]    # MALLOC_MMAP_THRESHOLD_=65536 in the ranks' environment
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from _train_run import timed_train

ROOT = Path(__file__).resolve().parents[1]
# "speed": 12.7M parameters, micro-batch 4; "memory" (--memory): 52M parameters (830 MB of fp32
# weights, gradients and AdamW state whole) at micro-batch 1, where that state, not the
# activations, is most of what a rank holds
SIZES = {
    "speed": ("tiny:hidden=512,layers=4,heads=8,kv_heads=4,intermediate=1536", 8, 4),
    "memory": ("tiny:hidden=768,layers=8,heads=12,kv_heads=6,intermediate=2048", 2, 1),
}
SETUPS = [  # (name, ranks, sharding, accumulation x micro-batch): effective batch 8 in each
    ("1 rank", 1, "none", 8),
    ("2 ranks DDP", 2, "none", 4),
    ("2 ranks FSDP", 2, "fsdp", 4),
]
MODEL, STEPS, BATCH = SIZES["memory" if "--memory" in sys.argv else "speed"]


def run(name: str, ranks: int, sharding: str, accum: int, tmp: Path) -> dict:
    accum //= BATCH
    out = tmp / name.replace(" ", "_")
    cmd = [sys.executable, "-m", "tunelm", "-q", "train", str(ROOT / "presets/tiny.yaml"),
           "--devices", str(ranks), "--sharding", sharding, "--out", str(out),
           "--set", f"model.name={MODEL}", "--set", "model.method=full",
           "--set", "train.learning_rate=1e-4",
           "--set", f"train.max_steps={STEPS}", "--set", f"train.batch_size={BATCH}",
           "--set", f"train.grad_accum={accum}", "--set", "train.eval_steps=1000",
           "--set", "train.save_best=false", "--set", "eval.max_examples=0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    if "--malloc-threshold" in sys.argv:
        # glibc raises its mmap threshold as large blocks are freed, then keeps freed memory in
        # its heap: FSDP's per-layer all-gather buffers stay resident and hide what sharding
        # saves. A fixed threshold hands large blocks back to the system when freed.
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    result, figures, wall = timed_train(cmd, env, out, ranks)
    return {"setup": name, "ranks": ranks, "sharding": sharding, "grad_accum": accum,
            "parameters": result["total_parameters"], **figures,
            "peak_rss_mb_rank0": result["peak_rss_mb"], "final_eval_loss":
            result["final_eval_loss"], "command_seconds": round(wall, 1)}


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for setup in SETUPS:
            rows.append(run(*setup, Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
    (ROOT / "benchmarks/data").mkdir(exist_ok=True)
    name = "fsdp_cpu_memory" if "--memory" in sys.argv else "fsdp_cpu"
    name += "_malloc" if "--malloc-threshold" in sys.argv else ""
    (ROOT / f"benchmarks/data/{name}.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"{'setup':<15}{'tok/s':>8}{'tok/s/rank':>12}{'peak RSS MB':>13}{'train s':>9}"
          f"{'eval loss':>11}")
    for r in rows:
        print(f"{r['setup']:<15}{r['tokens_per_s']:>8.0f}{r['tokens_per_s_per_rank']:>12.0f}"
              f"{r['peak_rss_mb_rank0']:>13.0f}{r['train_seconds']:>9.1f}"
              f"{r['final_eval_loss']:>11.4f}")


if __name__ == "__main__":
    main()
