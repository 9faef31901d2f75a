"""One timed `tunelm train` command and the throughput figures every rank benchmark reports
(`ddp_cpu.py`, `fsdp_cpu.py`)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path


def timed_train(cmd: list[str], env: dict, out: Path, ranks: int) -> tuple[dict, dict, float]:
    """Run `cmd` (a `tunelm train ... --out OUT`): (its result.json, the shared figures, the
    command's wall seconds)."""
    started = time.time()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.time() - started
    result = json.loads((out / "result.json").read_text())
    tps = result["tokens_per_s"]
    figures = {"effective_batch": result["plan"]["effective_batch"],
               "steps": result["final_step"], "tokens_seen": result["tokens_seen"],
               "train_seconds": result["train_seconds"], "tokens_per_s": tps,
               "tokens_per_s_per_rank": round(tps / ranks, 1)}
    return result, figures, wall
