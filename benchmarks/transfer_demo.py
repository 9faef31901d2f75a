"""`tunelm transfer` on the embedded SmolLM2: from a LoRA study to full fine-tuning of the model.

The proxy study: the demo task (240 generated contract clauses, 60 held out), SmolLM2-135M-
Instruct with the config `tunelm recommend` gives for it (LoRA r 16, alpha 32, batch 4), a grid
of five learning rates around the recommended one (x 10^(k/2), k = -2..2), each run capped at
`--steps` optimizer steps with eval loss every quarter of them on 16 held-out examples.

The target: the same model with full fine-tuning, whose planned run is five times longer
(`--steps` x 5); every proxy config (--top 5) is transferred and run for 20% of those steps, as
long as a proxy run. The hidden size is the same, so the rule's ratio is the method's alone:
formula_lr(576, full) / formula_lr(576, LoRA) = 1/10. Recorded in
benchmarks/data/transfer_demo.json: both orders, every value, Spearman's rho, Kendall's tau, the
winner, and the wall and CPU seconds of each side.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/transfer_demo.py       # ~20 min on 2 CPU cores
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/transfer_demo.py --model tiny --out runs/transfer-tiny
                                                                        # a seconds-long smoke run

The studies stay in runs/transfer-demo (proxy/, proxy-to-full/); a second run reuses a finished
proxy study and runs the target again.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
DATA = ROOT / "benchmarks" / "data" / "transfer_demo.json"
POINTS = 5


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def proxy_config(model: str, work: Path, steps: int):
    """The recommended config for the demo task, capped at `steps`, as a five-rate grid study."""
    from tunelm.config import from_dict
    from tunelm.recommend import Request, recommend
    from tunelm.tasks import contracts

    paths = contracts.write_dataset(work / "data", train=240, eval=60, seed=0)
    rec = recommend(Request(model=model, data=paths["train"], gpus=0))
    raw = rec.config_dict()
    lr = raw["train"]["learning_rate"]
    grid = [float(f"{lr * 10 ** ((k - POINTS // 2) / 2):.3g}") for k in range(POINTS)]
    raw["data"].update(train=paths["train"], eval=paths["eval"], max_eval_examples=16)
    raw["data"].pop("task", None)
    raw["train"].update(max_steps=steps, eval_steps=max(1, steps // 4),
                        early_stopping_patience=None)
    raw["eval"] = {"metric": "none", "baseline": False}
    raw["search"] = {"strategy": "grid", "pruner": "none", "curve_pruner": False, "trials": None, "keep_top": 1,
                     "space": {"train.learning_rate": {"type": "categorical", "choices": grid}}}
    return from_dict(raw), grid


def side(study_dir: Path, rows: list[dict]) -> list[dict]:
    """Per trial of a study: number, state, value, learning rate, steps run and seconds."""
    out = []
    for r in rows:
        result = Path(r["trial_dir"]) / "result.json" if r.get("trial_dir") else None
        done = json.loads(result.read_text()) if result and result.exists() else {}
        out.append({**r, "final_step": done.get("final_step"),
                    "stop_reason": done.get("stop_reason"),
                    "train_seconds": done.get("train_seconds")})
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--steps", type=int, default=16, help="steps of a proxy run (default 16)")
    parser.add_argument("--fraction", type=float, default=0.2)
    parser.add_argument("--out", default=str(ROOT / "runs" / "transfer-demo"))
    parser.add_argument("--record", default=None,
                        help=f"JSON to write (default {DATA.relative_to(ROOT)} for smollm2-135m, "
                             "none otherwise)")
    args = parser.parse_args(argv)
    if args.steps < 4:
        print(f"--steps must be >= 4, got {args.steps}", file=sys.stderr)
        return 2

    import warnings

    warnings.filterwarnings("ignore")
    import optuna
    from transformers.utils import logging as hf_logging

    from tunelm.logs import setup_console
    from tunelm.search import run_search
    from tunelm.search.study import open_study
    from tunelm.transfer import run_transfer, table

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    setup_console(verbose=False, quiet=False)
    logging.getLogger("tunelm.train").setLevel(logging.WARNING)
    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()

    # 1. the proxy study: LoRA, five learning rates (resumed if it is there)
    cfg, grid = proxy_config(args.model, work, args.steps)
    t0, c0 = time.time(), cpu_seconds()
    proxy = run_search(cfg, work / "proxy", live=True)
    proxy_wall, proxy_cpu = time.time() - t0, cpu_seconds() - c0

    # 2. the target: full fine-tuning, a planned run 1/fraction times a proxy run's length
    target_dir = work / "proxy-to-full"
    shutil.rmtree(target_dir, ignore_errors=True)
    planned = round(args.steps / args.fraction)
    overrides = ["model.method=full", f"train.max_steps={planned}",
                 f"train.eval_steps={max(1, planned // 4)}"]
    t0, c0 = time.time(), cpu_seconds()
    result = run_transfer(work / "proxy", args.model, top=POINTS, fraction=args.fraction,
                          out=target_dir, overrides=overrides)
    target_wall, target_cpu = time.time() - t0, cpu_seconds() - c0
    print(table(result))

    proxy_study, _ = open_study(None, work / "proxy")
    proxy_rows = sorted(proxy.trials, key=lambda r: (r["value"] is None, r["value"] or 0))
    by_number = {t.number: t for t in proxy_study.get_trials(deepcopy=False)}
    for r in proxy_rows:
        r["trial_dir"] = by_number[r["number"]].user_attrs.get("trial_dir")
    order_target = sorted(result.configs, key=lambda c: c["target_rank"])
    record = {
        "model": args.model, "task": "contracts (240 train, 60 eval; eval loss on 16)",
        "command": "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/transfer_demo.py "
                   f"--steps {args.steps} --fraction {args.fraction}",
        "proxy": {"method": "lora", "steps": args.steps, "grid": grid,
                  "config": cfg.to_dict(), "wall_seconds": round(proxy_wall, 1),
                  "cpu_seconds": round(proxy_cpu, 1),
                  "trials": side(work / "proxy", proxy_rows),
                  "order": [{"trial": c["proxy_trial"],
                             "lr": c["proxy_params"]["train.learning_rate"],
                             "best_eval_loss": c["proxy_value"]} for c in result.configs]},
        "target": {"method": "full", "planned_steps": planned, "fraction": args.fraction,
                   "overrides": overrides, "wall_seconds": round(target_wall, 1),
                   "cpu_seconds": round(target_cpu, 1),
                   "order": [{"proxy_trial": c["proxy_trial"],
                              "lr": c["target_params"]["train.learning_rate"],
                              "best_eval_loss": c["target_value"], "state": c["target_state"],
                              "note": c["target_note"]} for c in order_target]},
        "lr_ratio": result.configs[0]["explanation"]["learning_rate"]["formula_ratio"],
        "spearman_rho": result.spearman_rho, "kendall_tau": result.kendall_tau,
        "winner": result.winner, "transfer": result.as_dict(),
        "wall_seconds": round(time.time() - started, 1),
    }
    out = Path(args.record) if args.record else (DATA if args.model == "smollm2-135m" else None)
    if out is not None:
        text = json.dumps(record, indent=1, default=str).replace(str(work), "<work>")
        out.write_text(text + "\n", encoding="utf-8")
        print(f"recorded in {out}")
    print(f"took {(time.time() - started) / 60:.1f} min (proxy {proxy_wall:.0f} s, target "
          f"{target_wall:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
