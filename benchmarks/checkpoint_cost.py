"""What a resumable checkpoint costs: seconds per save and bytes on disk, against a training step.

Trains a few steps with `train.checkpoint_minutes` so small that a checkpoint is saved after
every step (Trainer's own checkpoint into `<trial>/hf/`, then renamed over `<trial>/resume`:
adapter or weights, optimizer, scheduler, RNG, trainer state), on the tiny random model and on
the embedded SmolLM2-135M with LoRA. The seconds come from the checkpoint log lines of
`train.log`; the bytes from `<trial>/resume` at the end of training; the step time is the
training time without the saves, per step. Writes benchmarks/data/checkpoint_cost.json.

    OMP_NUM_THREADS=2 PYTHONPATH=src .venv/bin/python benchmarks/checkpoint_cost.py [tiny|smollm2]
"""

from __future__ import annotations

import json
import re
import statistics
import sys
import tempfile
from pathlib import Path

from transformers import TrainerCallback

ROOT = Path(__file__).resolve().parents[1]
EVERY_STEP = 1e-6  # minutes: a checkpoint at every step boundary
MODELS = {  # name: (preset, steps, overrides)
    "tiny": ("presets/tiny.yaml", 20, {}),
    "smollm2": ("presets/demo.yaml", 6, {"data.max_eval_examples": 4}),
}
SAVE_LINE = re.compile(r"checkpoint \| step (\d+) \| ([0-9.]+) s")


class DiskSize(TrainerCallback):
    """The bytes and files of `<trial>/resume` when training ends (it is deleted after)."""

    def __init__(self, out: Path):
        self.out, self.bytes, self.files = out, 0, {}

    def on_train_end(self, args, state, control, **kw):
        kept = [p for p in (self.out / "resume").rglob("*") if p.is_file()]
        self.bytes = sum(p.stat().st_size for p in kept)
        self.files = {p.name: p.stat().st_size for p in kept}


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
            "trainable_parameters": result["trainable_parameters"], "saves": len(saves),
            "save_seconds_median": round(statistics.median(saves), 3),
            "save_seconds_max": round(max(saves), 3), "step_seconds": round(step_s, 3),
            "save_per_step": round(statistics.median(saves) / step_s, 3),
            "checkpoint_bytes": size.bytes, "largest_files": dict(sorted(
                size.files.items(), key=lambda kv: -kv[1])[:4])}


def main(names: list[str]) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            rows.append(measure(name, Path(tmp)))
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
    main(sys.argv[1:] or list(MODELS))
