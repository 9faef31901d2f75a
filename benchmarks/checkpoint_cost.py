"""What a resumable checkpoint costs: seconds per save and bytes on disk, against a training step.

Trains a few steps with `train.checkpoint_minutes` so small that a checkpoint is saved after
every step (Trainer's own checkpoint into `<trial>/hf/`, then renamed over `<trial>/resume`:
adapter or weights, optimizer, scheduler, RNG, trainer state), on the tiny random model and on
the embedded SmolLM2-135M with LoRA. The seconds come from the checkpoint log lines of
`train.log`; the bytes from `<trial>/resume` at the end of training; the step time is the
training time without the saves, per step. Writes benchmarks/data/checkpoint_cost.json.

`fsdp-lora` and `fsdp-full`: the tiny model on 2 gloo ranks under `train.sharding fsdp`, where
each rank writes its own shard (`runner/sharded_checkpoint.py`). A trial on several ranks takes
no in-process callback, so this runs `tunelm train` and stops it with SIGTERM after a few saves
(the checkpoint is kept, exit 75); the bytes are those of `<trial>/resume` then, the step time
the time between two saves' log lines (a step and a save) less the save.

    OMP_NUM_THREADS=2 PYTHONPATH=src .venv/bin/python benchmarks/checkpoint_cost.py [tiny|smollm2|fsdp-lora|fsdp-full]
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from transformers import TrainerCallback

ROOT = Path(__file__).resolve().parents[1]
EVERY_STEP = 1e-6  # minutes: a checkpoint at every step boundary
MODELS = {  # name: (preset, steps, overrides)
    "tiny": ("presets/tiny.yaml", 20, {}),
    "smollm2": ("presets/demo.yaml", 6, {"data.max_eval_examples": 4}),
}
SAVE_LINE = re.compile(r"checkpoint \| step (\d+) \| ([0-9.]+) s")
SHARDED = {"fsdp-lora": "lora", "fsdp-full": "full"}  # name: model.method, 2 ranks, fsdp
TIMED_SAVE_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*checkpoint \| step (\d+) \| ([0-9.]+) s", re.M)


def disk(resume: Path) -> tuple[int, dict]:
    """(bytes, the 4 largest files by name) of a kept checkpoint directory."""
    sizes = {p.name: p.stat().st_size for p in resume.rglob("*") if p.is_file()}
    return sum(sizes.values()), dict(sorted(sizes.items(), key=lambda kv: -kv[1])[:4])


def figures(saves: list[float], step_s: float) -> dict:
    """The save seconds against the training step, as every row reports them."""
    return {"saves": len(saves), "save_seconds_median": round(statistics.median(saves), 3),
            "save_seconds_max": round(max(saves), 3), "step_seconds": round(step_s, 3),
            "save_per_step": round(statistics.median(saves) / step_s, 3)}


class DiskSize(TrainerCallback):
    """The bytes and files of `<trial>/resume` when training ends (it is deleted after)."""

    def __init__(self, out: Path):
        self.out, self.bytes, self.largest = out, 0, {}

    def on_train_end(self, args, state, control, **kw):
        self.bytes, self.largest = disk(self.out / "resume")


def measure(name: str, tmp: Path) -> dict:
    from tunelm.config import load_config
    from tunelm.runner import run_trial

    preset, steps, extra = MODELS[name]
    sets = {"train.max_steps": steps, "train.eval_steps": 1000, "eval.metric": "none",
            "train.checkpoint_minutes": EVERY_STEP, "train.save_best": False, **extra}
    cfg = load_config(ROOT / preset, [f"{k}={v}" for k, v in sets.items()])
    out = tmp / name
    size = DiskSize(out)
    result = run_trial(cfg, out, callbacks=[size], progress=False)
    saves = [float(s) for _, s in SAVE_LINE.findall((out / "train.log").read_text())]
    step_s = (result["train_seconds"] - sum(saves)) / result["final_step"]
    return {"model": name, "preset": preset, "steps": result["final_step"],
            "trainable_parameters": result["trainable_parameters"], **figures(saves, step_s),
            "checkpoint_bytes": size.bytes, "largest_files": size.largest}


def measure_sharded(name: str, tmp: Path, saves_wanted: int = 6) -> dict:
    """The tiny model on 2 ranks under fsdp: `tunelm train`, SIGTERM after `saves_wanted` saves."""
    out = tmp / name
    cmd = [sys.executable, "-m", "tunelm", "-q", "train", "presets/tiny.yaml", "--out", str(out),
           "--devices", "2", "--sharding", "fsdp", "--set", f"model.method={SHARDED[name]}",
           "--set", "train.max_steps=400", "--set", "train.eval_steps=1000",
           "--set", f"train.checkpoint_minutes={EVERY_STEP}", "--set", "eval.metric=none",
           "--set", "train.save_best=false"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    log = out / "train.log"
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and len(SAVE_LINE.findall(log.read_text())) >= saves_wanted:
            proc.send_signal(signal.SIGTERM)
            break
        time.sleep(0.2)
    _, err = proc.communicate(timeout=300)
    if proc.returncode != 75:
        raise SystemExit(f"{name}: expected exit 75 after SIGTERM, got {proc.returncode}: {err}")
    lines = TIMED_SAVE_LINE.findall(log.read_text())
    stamps = [datetime.strptime(t, "%Y-%m-%d %H:%M:%S,%f").timestamp() for t, _, _ in lines]
    saves = [float(s) for _, _, s in lines]
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]  # one step and one save
    step_s = statistics.median(gaps) - statistics.median(saves)
    size, largest = disk(out / "resume")
    return {"model": name, "preset": "presets/tiny.yaml", "ranks": 2, "sharding": "fsdp",
            "method": SHARDED[name], "steps": int(lines[-1][1]), **figures(saves, step_s),
            "checkpoint_bytes": size, "largest_files": largest}


def main(names: list[str]) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            run = measure_sharded if name in SHARDED else measure
            rows.append(run(name, Path(tmp)))
            print(json.dumps(rows[-1]))
    path = ROOT / "benchmarks/data/checkpoint_cost.json"
    old = {r["model"]: r for r in json.loads(path.read_text())} if path.exists() else {}
    old.update({r["model"]: r for r in rows})
    path.write_text(json.dumps(list(old.values()), indent=2) + "\n")
    print(f"{'model':<10}{'save s':>9}{'step s':>9}{'save/step':>11}{'MB':>9}")
    for r in old.values():
        print(f"{r['model']:<10}{r['save_seconds_median']:>9.3f}{r['step_seconds']:>9.3f}"
              f"{r['save_per_step']:>11.2f}{r['checkpoint_bytes'] / 1e6:>9.2f}")


if __name__ == "__main__":
    main(sys.argv[1:] or [*MODELS, *SHARDED])
