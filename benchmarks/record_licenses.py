"""Record a multi-epoch natural-text grid, and lr-find on every grid's config, for the advice
benchmark (benchmarks/advice_accuracy.py).

The grid "licenses" is run as a user runs a small free-text fine-tune: paragraphs of the licence
texts every Debian/Ubuntu machine has (/usr/share/common-licenses; no download), the config
`tunelm recommend` gives for that file, 3 epochs at batch 4, an evaluation every half epoch and
early stopping (patience 3). Learning rates: recommended x 10^(k/2), k = -3, -1, 0, 1, 2, 3, so the
two top rates (10x and 30x the recommended) show what a rate too high looks like. Rank and warmup stay at the
recommended values (the advice is about the rate). Each run keeps its whole curves: train loss per
step with its epoch, and every eval loss.

Then `run_lr_find` runs on the config of each grid (contracts, docstrings, licenses), so that its
suggestions can be compared with each grid's best rate.

    OMP_NUM_THREADS=1 nohup .venv/bin/python benchmarks/record_licenses.py > runs/record_licenses.log 2>&1 &

About 40 minutes on the shared 2-core CPU (one thread; 6-9 s per step while shared); resumable: finished runs are kept.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))
DATA = ROOT / "benchmarks" / "data"
LICENSES = Path("/usr/share/common-licenses")
LR = "train.learning_rate"
CAP = {"train_examples": 64, "eval_examples": 16, "epochs": 3, "batch_size": 4,
       "eval_steps": 8, "max_length": 128, "early_stopping_patience": 3}
# learning rate = recommended x 10^(k/2); the most telling first (the CPU time is short)
LR_EXPONENTS = (0, 3, 1, 2, -1, -3)
LR_FIND = {"min_lr": 1e-5, "max_lr": 1.0, "steps": 50}
LR_FIND_GRIDS = ("licenses",)  # --lr-find-grids licenses,contracts,docstrings for all


def paragraphs(min_chars: int = 200, max_chars: int = 520) -> list[str]:
    """De-duplicated paragraphs of the licence texts, in a stable order."""
    seen, out = set(), []
    for path in sorted(LICENSES.iterdir()):
        if path.is_symlink() or not path.is_file():
            continue
        for para in path.read_text(errors="ignore").split("\n\n"):
            text = " ".join(para.split())
            if min_chars <= len(text) <= max_chars and text not in seen:
                seen.add(text)
                out.append(text)
    return sorted(out, key=lambda t: hashlib.sha1(t.encode()).hexdigest())


def write_data(work: Path) -> dict:
    paras = paragraphs()
    n_train, n_eval = CAP["train_examples"], CAP["eval_examples"]
    if len(paras) < n_train + n_eval:
        raise SystemExit(f"only {len(paras)} paragraphs under {LICENSES}")
    work.mkdir(parents=True, exist_ok=True)
    paths = {"train": work / "train.jsonl", "eval": work / "eval.jsonl"}
    for split, items in (("train", paras[:n_train]), ("eval", paras[n_train:n_train + n_eval])):
        paths[split].write_text("".join(json.dumps({"text": t}) + "\n" for t in items))
    return {k: str(v) for k, v in paths.items()}


def grid_config(work: Path) -> tuple[dict, float]:
    from tunelm.recommend import Request, recommend

    paths = write_data(work / "licenses")
    cfg = recommend(Request(model="smollm2-135m", data=paths["train"], gpus=0)).config_dict()
    cfg["data"].update(eval=paths["eval"], max_length=min(cfg["data"]["max_length"],
                                                          CAP["max_length"]))
    cfg["train"].update(epochs=CAP["epochs"], batch_size=CAP["batch_size"], grad_accum=1,
                        max_steps=None, eval_steps=CAP["eval_steps"],
                        early_stopping_patience=CAP["early_stopping_patience"])
    cfg["eval"] = {"metric": "none"}
    return cfg, cfg["train"]["learning_rate"]


def run_one(cfg_dict: dict, lr: float, out: Path, loaded) -> dict:
    from _grid import RANK, WARMUP, _sig, key_of

    from tunelm.config import from_dict
    from tunelm.errors import TrainingError
    from tunelm.runner import run_trial

    d = json.loads(json.dumps(cfg_dict))
    d["train"]["learning_rate"] = lr
    cfg = from_dict(d)
    params = {LR: lr, RANK: cfg.lora.r, WARMUP: cfg.train.warmup_ratio}
    start = time.time()
    try:
        result = run_trial(cfg, out, loaded=loaded, progress=False)
    except TrainingError as exc:  # a diverged run is a data point, not a crash
        result = exc.result or {}
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return {
        "key": key_of(params), "params": params,
        "planned_steps": -(-CAP["train_examples"] // CAP["batch_size"]) * CAP["epochs"], "final_step": result.get("final_step"),
        "stop_reason": result.get("stop_reason"),
        "best_eval_loss": _sig(result.get("best_eval_loss")), "best_step": result.get("best_step"),
        "exact_match": None, "seconds": round(time.time() - start, 1),
        "evals": [[r["step"], _sig(r["eval_loss"]), r.get("epoch")]
                  for r in rows if "eval_loss" in r],
        "train": [[r["step"], _sig(r.get("train_loss")), _sig(r.get("grad_norm"), 4),
                   r.get("epoch")] for r in rows if "train_loss" in r],
    }


def record_grid(work: Path, holder: dict, exponents=LR_EXPONENTS) -> None:
    from tunelm.config import from_dict

    out_path = DATA / "grid-licenses.json"
    if "grid" not in holder:
        holder["grid"] = grid_config(work)
    cfg, rec_lr = holder["grid"]
    data = json.loads(out_path.read_text()) if out_path.exists() else {}
    lrs = [float(f"{rec_lr * 10 ** (k / 2):.3g}") for k in exponents]
    data.update({"task": "licenses", "cap": CAP, "curves": "train: [step, loss, grad_norm, epoch]; "
                 "evals: [step, eval_loss, epoch]",
                 "recommended": {"train.learning_rate": rec_lr, "lora.r": cfg["lora"]["r"],
                                 "train.warmup_ratio": cfg["train"]["warmup_ratio"]},
                 "grid": {"learning_rates": sorted(set(lrs) | {r["params"][LR] for r in
                                                              data.get("runs", [])})}, "config":
                 json.loads(json.dumps(cfg).replace(str(work), "<work>"))})
    runs = data.setdefault("runs", [])
    done = {r["params"][LR] for r in runs}
    for lr in lrs:
        if lr in done:
            continue
        load(holder, from_dict(cfg))
        trial = work / f"lic-{lr:g}"
        row = run_one(cfg, lr, trial, holder["loaded"])
        shutil.rmtree(trial, ignore_errors=True)
        runs.append(row)
        out_path.write_text(json.dumps(data, indent=1) + "\n")
        print(f"licenses {row['key']}: best {row['best_eval_loss']} @ {row['best_step']}, "
              f"{row['stop_reason']} at {row['final_step']}, {row['seconds']} s", flush=True)


def load(holder: dict, cfg) -> None:
    if "loaded" not in holder:
        from tunelm.base_model import load_base_model

        holder["loaded"] = load_base_model(cfg.model, "fp32", "cpu")[:2]


def record_lr_find(work: Path, holder: dict, names) -> None:
    """lr-find on the config of each grid, with its raw curve kept."""
    from tunelm.config import from_dict
    from tunelm.lr_find import run_lr_find

    out_path = DATA / "lr_find_grids.json"
    data = json.loads(out_path.read_text()) if out_path.exists() else {"settings": LR_FIND,
                                                                         "grids": {}}
    for name in names:
        if name in data["grids"]:
            continue
        grid = json.loads((DATA / f"grid-{name}.json").read_text())
        if name == "licenses":
            paths = write_data(work / "licenses")
        else:
            from lr_sweep import task_data

            paths = task_data(name, work)
        cfg = json.loads(json.dumps(grid["config"]).replace("<work>", str(work)))
        cfg["data"].update(train=paths["train"], eval=paths["eval"])
        cfg = from_dict(cfg)
        load(holder, cfg)
        start = time.time()
        try:
            rec = run_lr_find(cfg, work / f"lrf-{name}", loaded=holder["loaded"],
                              progress=False, **LR_FIND)
        except Exception as exc:  # no suggestion is a result too
            rec = json.loads((work / f"lrf-{name}" / "lr_find.json").read_text())
            rec["error"] = str(exc)
        rec["seconds"] = round(time.time() - start, 1)
        data["grids"][name] = rec
        out_path.write_text(json.dumps(data, indent=1) + "\n")
        print(f"lr-find {name}: {rec.get('suggested_lr')} ({rec['seconds']} s)", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr-find-grids", default=",".join(LR_FIND_GRIDS))
    parser.add_argument("--sequence", default=",".join(map(str, LR_EXPONENTS)) + ",lr-find",
                        help="what to record, in order: k (the rate recommended x 10^(k/2)) "
                        "or lr-find; what is already recorded is skipped")
    args = parser.parse_args()
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    logging.getLogger("tunelm").setLevel(logging.WARNING)
    holder: dict = {}  # the base model, loaded once for everything
    with tempfile.TemporaryDirectory() as tmp:
        for item in args.sequence.split(","):
            if item == "lr-find":
                record_lr_find(Path(tmp), holder, args.lr_find_grids.split(","))
            else:
                record_grid(Path(tmp), holder, [int(item)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
