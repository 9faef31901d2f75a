"""The memory estimate of `tunelm recommend` against the measured peak of real `tunelm train` runs.

Each case runs in a fresh process: it records the resident memory after the imports (the Python,
PyTorch and Transformers baseline), then runs a short real trial (LoRA, fp32 on this CPU, every
sequence exactly `seq` tokens), and reports the peak resident memory minus that baseline. The
estimate is tunelm.recommend.memory.estimate for the same shapes (on_gpu=False: fp32 weights and
activations). Target: within 25%.

    .venv/bin/python benchmarks/memory_check.py          # tiny and SmolLM2-135M, two batches each
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# (model, micro-batch, tokens, role): the two constants of the activation model (7h per token
# and layer, 0.41 x heads x seq on CPU) were fitted on the "calibration" cases; the "held-out"
# cases, other shapes, batches and lengths, were not used to fit anything.
CASES = [
    ("tiny:hidden=64,layers=2", 8, 512, "calibration"),
    ("tiny:hidden=64,layers=2", 32, 512, "calibration"),
    ("smollm2-135m", 2, 256, "calibration"),
    ("smollm2-135m", 8, 256, "calibration"),
    ("tiny:hidden=128,layers=4,heads=8,kv_heads=2", 16, 256, "held-out"),
    ("tiny:hidden=128,layers=4,heads=8,kv_heads=2", 4, 1024, "held-out"),
    ("smollm2-135m", 4, 512, "held-out"),
    ("smollm2-135m", 1, 1024, "held-out"),
]

CHILD = r"""
import json, resource, sys, tempfile, warnings
from pathlib import Path
warnings.filterwarnings("ignore")
sys.path.insert(0, sys.argv[4])
import torch, transformers, peft  # the baseline includes the libraries
from transformers.utils import logging as hf_logging
hf_logging.set_verbosity_error()
from tunelm.config import from_dict
from tunelm.runner import run_trial

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

name, batch, seq = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
base = rss_mb()
tmp = Path(tempfile.mkdtemp())
words = " ".join(f"word{i} and more text" for i in range(seq * 2))
rows = [json.dumps({"text": words}) for _ in range(batch * 4)]
(tmp / "train.jsonl").write_text("\n".join(rows) + "\n")
(tmp / "eval.jsonl").write_text("\n".join(rows[:2]) + "\n")
cfg = from_dict({
    "model": {"name": name, "precision": "fp32"},
    "lora": {"r": 16, "alpha": 32, "dropout": 0.05},
    "data": {"train": str(tmp / "train.jsonl"), "eval": str(tmp / "eval.jsonl"),
             "max_length": seq, "completion_only": False},
    "train": {"batch_size": batch, "max_steps": 3, "eval_steps": 3,
              "early_stopping_patience": None},
    "eval": {"metric": "none"},
})
result = run_trial(cfg, tmp / "run", progress=False)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"baseline_mb": base, "peak_mb": peak, "measured_mb": peak - base,
                  "seq": result["data"]["train"]["max_tokens"]}))
"""


def main() -> int:
    sys.path.insert(0, str(ROOT / "src"))
    from tunelm.recommend.facts import model_facts
    from tunelm.recommend.memory import estimate

    rows = []
    for name, batch, seq, role in CASES:
        proc = subprocess.run([sys.executable, "-c", CHILD, name, str(batch), str(seq),
                               str(ROOT / "src")], capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stderr[-2000:])
            return 1
        measured = json.loads(proc.stdout.strip().splitlines()[-1])
        facts = model_facts(name)
        est = estimate(facts, method="lora", micro_batch=batch, seq_len=measured["seq"], r=16,
                       on_gpu=False)
        est_mb = est.total / 2**20
        row = {"model": name, "role": role, "batch": batch, "seq": measured["seq"],
               "measured_mb": round(measured["measured_mb"], 1), "estimate_mb": round(est_mb, 1),
               "error": round(est_mb / measured["measured_mb"] - 1, 3),
               "parts_gib": est.as_dict()}
        rows.append(row)
        print(f"| {name} | {role} | {batch} | {row['seq']} | {row['measured_mb']:.0f} | {est_mb:.0f} | "
              f"{row['error']:+.1%} |", flush=True)
    out = ROOT / "benchmarks" / "data" / "memory_check.json"
    out.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
