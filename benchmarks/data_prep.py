"""Seconds and memory spent preparing data in trial 1 and trial 2 of a study, before and after
the tokenize-once cache.

A generated 100k-example chat dataset (the contracts task, about 200 tokens an example) is
prepared by `tunelm.data.prepare` with the SmolLM2-135M tokenizer, max_length 512, a 10% held-out
eval split. Each measurement runs in a fresh process that records its resident memory after the
imports and the tokenizer (the baseline) and its peak while preparing:

- old: the code before the data package (the old `tunelm/data.py`, from another checkout given
  with --old-src): every trial reads and tokenizes everything again, in Python lists.
- new, trial 1: an empty cache; new, trial 2: another process on the same cache (as the next
  trial of a study, or another worker, is).

    .venv/bin/python benchmarks/data_prep.py --old-src OLD/src   # OLD: a checkout of the code before; about 10 minutes
    .venv/bin/python benchmarks/data_prep.py --examples 20000 --old-src ...  # a quicker look
    .venv/bin/python benchmarks/data_prep.py --skip-new --old-src ...        # the old code only
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time, warnings
warnings.filterwarnings("ignore")
sys.path.insert(0, sys.argv[1])
import torch, transformers, datasets  # the baseline includes the libraries
from tunelm.config import DataConfig
from tunelm.data import prepare
from tunelm.models import load_tokenizer, resolve_source

args = json.loads(sys.argv[2])
tok = load_tokenizer(resolve_source("smollm2-135m"))
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
base = rss()
cfg = DataConfig(train=args["train"], max_length=512)
kwargs = {"cache_dir": args["cache"]} if args["cache"] else {}
start = time.perf_counter()
data = prepare(tok, cfg, args["work"], **kwargs)
seconds = time.perf_counter() - start
n = sum(1 for _ in data.train) if args["touch"] else len(data.train)
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"seconds": round(seconds, 2), "peak_rss_mb": round(rss(), 1),
                  "largest_child_peak_rss_mb": round(kids, 1),
                  "rss_over_baseline_mb": round(rss() - base, 1), "train_sequences": n,
                  "cache_hit": getattr(data, "cache_hit", None)}))
"""


def measure(src: str, train: str, work: Path, cache: Path | None, touch: bool = False) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": src, "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    args = json.dumps({"train": train, "work": str(work), "cache": str(cache) if cache else None,
                       "touch": touch})
    out = subprocess.run([sys.executable, "-c", CHILD, src, args], env=env, text=True,
                         capture_output=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100_000)
    parser.add_argument("--old-src", help="src/ of a checkout with the old tunelm/data.py")
    parser.add_argument("--skip-new", action="store_true",
                        help="measure only the old code (the new figures in --out are kept)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "data" / "data_prep.json"))
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "src"))
    from tunelm.tasks import contracts

    tmp = Path(tempfile.mkdtemp(prefix="tunelm-data-prep-"))
    try:
        train = contracts.write_dataset(tmp / "data", args.examples, 1, seed=0)["train"]
        size_mb = Path(train).stat().st_size / 2**20
        print(f"{args.examples} examples, {size_mb:.1f} MB of JSONL", flush=True)
        out = Path(args.out)
        results = json.loads(out.read_text()) if out.exists() else {}
        results.update({"examples": args.examples, "jsonl_mb": round(size_mb, 1)})
        new = str(ROOT / "src")
        if not args.skip_new:
            results["new_trial1"] = measure(new, train, tmp / "t1", tmp / "cache")
            print("new, trial 1:", results["new_trial1"], flush=True)
            results["new_trial2"] = measure(new, train, tmp / "t2", tmp / "cache")
            print("new, trial 2:", results["new_trial2"], flush=True)
            results["new_trial2_reading_every_sequence"] = measure(new, train, tmp / "t3",
                                                                   tmp / "cache", touch=True)
            print("new, trial 2, every sequence read:",
                  results["new_trial2_reading_every_sequence"], flush=True)
            t1, t2 = results["new_trial1"]["seconds"], results["new_trial2"]["seconds"]
            results["trial2_share_of_trial1"] = round(t2 / t1, 4)
            print(f"trial 2 takes {t2 / t1:.1%} of trial 1")
        if args.old_src:
            results["old_each_trial"] = measure(args.old_src, train, tmp / "o1", None)
            print("old, every trial:", results["old_each_trial"], flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1) + "\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
