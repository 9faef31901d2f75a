"""Population-based training against the best single run at equal compute, on the demo task.

The contract-extraction task on the embedded SmolLM2-135M, config and search space from
`tunelm recommend`. Two arms, the same number of training steps:

- pbt: `tunelm search --strategy pbt`, population 4, 3 generations of G steps (4 x 3G steps);
  the bottom quarter copies the top quarter's adapter and optimizer state after each generation;
- single: the same 4 starting configurations as the pbt population's generation 0 (the
  recommended config and 3 draws from its space, the same seed), each trained alone for 3G
  steps with its own schedule (4 x 3G steps).

Both evaluate the eval loss every G steps on the same 24 held-out examples. The figure: the best
pbt member's eval loss at the end against the best single run's, and the best eval loss seen
anywhere in each arm. Target: pbt's best member at least as good as the best single run.

    .venv/bin/python benchmarks/pbt_demo.py             # about 25 minutes on a 2-core CPU
    .venv/bin/python benchmarks/pbt_demo.py --model tiny --steps 3 --no-save  # a smoke test
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def task_config(work: Path, model: str, steps: int, seed: int) -> dict:
    from tunelm.recommend import Request, recommend
    from tunelm.tasks import contracts

    paths = contracts.write_dataset(work / "contracts", train=240, eval=60, seed=0)
    rec = recommend(Request(model="smollm2-135m", data=paths["train"], gpus=0))
    cfg = rec.config_dict()
    cfg["model"]["name"] = model
    cfg["data"].update({"eval": paths["eval"], "max_eval_examples": 24,
                        "max_length": 1024 if model == "tiny" else  # a byte tokenizer
                        min(cfg["data"]["max_length"], 192)})
    cfg["train"].update({"max_steps": 3 * steps, "eval_steps": steps,
                         "early_stopping_patience": None, "seed": seed})
    cfg["eval"] = {"metric": "none"}  # eval loss is the measure; generation is the slow part
    cfg["search"].update({"strategy": "pbt", "pbt_population": 4, "pbt_generations": 3,
                          "pbt_generation_steps": steps, "pbt_quantile": 0.25,
                          "pbt_resample_probability": 0.25, "seed": seed, "keep_top": 1})
    return cfg


def run_pbt(cfg_dict: dict, out: Path) -> dict:
    import optuna

    from tunelm.config import from_dict
    from tunelm.report.data import lineage_of
    from tunelm.search import run_search

    started, cpu = time.time(), cpu_seconds()
    result = run_search(from_dict(cfg_dict), out)
    study = optuna.load_study(study_name=out.name, storage=result.storage)
    cells = lineage_of(study.get_trials(deepcopy=False))
    last = max(c.generation for c in cells)
    final = {c.member: c.loss for c in cells if c.generation == last}
    best_member = min((m for m in final if final[m] is not None), key=final.get)
    return {
        "final_eval_loss_by_member": final,
        "best_member": best_member,
        "best_member_final_eval_loss": final[best_member],
        "best_eval_loss_anywhere": result.best_value,
        "lineage": [{"member": c.member, "generation": c.generation, "parent": c.parent,
                     "explore": c.explore, "learning_rate": c.learning_rate,
                     "params": c.params, "eval_loss_at_end": c.loss} for c in cells],
        "trials": len(cells),
        "stop_reason": result.stop_reason,
        "wall_seconds": round(time.time() - started, 1),
        "cpu_seconds": round(cpu_seconds() - cpu, 1),
    }


def run_singles(cfg_dict: dict, out: Path) -> dict:
    from tunelm.base_model import load as load_for
    from tunelm.config import from_dict
    from tunelm.errors import TrainingError
    from tunelm.runner import run_trial
    from tunelm.search.pbt_run import strategy_of
    from tunelm.search.space import apply, dims_of

    cfg = from_dict(cfg_dict)
    starts = strategy_of(cfg, dims_of(cfg)).initial()  # the pbt population's generation 0
    model, tok, _, _ = load_for(cfg.model)
    started, cpu = time.time(), cpu_seconds()
    runs = []
    for s in starts:
        run_cfg = apply(cfg, s.params)
        try:
            r = run_trial(run_cfg, out / f"member-{s.member}", loaded=(model, tok), progress=False)
        except TrainingError as exc:  # a diverged run is a data point
            r = exc.result
        runs.append({"member": s.member, "params": s.params,
                     "final_eval_loss": r.get("final_eval_loss"),
                     "best_eval_loss": r.get("best_eval_loss"),
                     "stop_reason": r.get("stop_reason"), "steps": r.get("final_step")})
        print(f"single {s.member}: final eval loss {r.get('final_eval_loss')}, best "
              f"{r.get('best_eval_loss')}", flush=True)
    done = [r for r in runs if r["final_eval_loss"] is not None]
    best = min(done, key=lambda r: r["final_eval_loss"])
    return {"runs": runs, "best_member": best["member"],
            "best_final_eval_loss": best["final_eval_loss"],
            "best_eval_loss_anywhere": min(r["best_eval_loss"] for r in done),
            "wall_seconds": round(time.time() - started, 1),
            "cpu_seconds": round(cpu_seconds() - cpu, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="steps of one pbt generation")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-save", action="store_true", help="do not write the data file")
    args = parser.parse_args()

    import logging
    import warnings

    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("tunelm").setLevel(logging.WARNING)
    logging.getLogger("tunelm.search").setLevel(logging.INFO)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cfg = task_config(work, args.model, args.steps, args.seed)
        pbt = run_pbt(cfg, work / "pbt")
        print(f"pbt: best member {pbt['best_member']} final eval loss "
              f"{pbt['best_member_final_eval_loss']:.4f} ({pbt['wall_seconds']} s)", flush=True)
        single = run_singles(cfg, work / "single")
    gap = (pbt["best_member_final_eval_loss"] - single["best_final_eval_loss"]) \
        / single["best_final_eval_loss"]
    record = {
        "command": "benchmarks/pbt_demo.py " + " ".join(sys.argv[1:]),
        "model": args.model, "generation_steps": args.steps, "population": 4, "generations": 3,
        "steps_per_arm": 4 * 3 * args.steps,
        "config": json.loads(json.dumps(cfg).replace(str(work), "<work>")),
        "pbt": pbt, "single": single,
        "relative_difference_final_eval_loss": round(gap, 4),
        "target": "pbt's best member's final eval loss <= the best single run's",
        "met": pbt["best_member_final_eval_loss"] <= single["best_final_eval_loss"],
        "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    print(f"pbt best member {pbt['best_member_final_eval_loss']:.4f} vs best single "
          f"{single['best_final_eval_loss']:.4f} ({gap:+.1%}); best anywhere "
          f"{pbt['best_eval_loss_anywhere']:.4f} vs {single['best_eval_loss_anywhere']:.4f}; "
          f"met: {record['met']}")
    if not args.no_save:
        path = ROOT / "benchmarks" / "data" / "pbt_demo.json"
        path.write_text(json.dumps(record, indent=2) + "\n")
        print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
