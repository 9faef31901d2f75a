"""Where the seconds of a demo trial go: training, evaluations (eval loss), generation (the task
metric), the rest; for a probe (the demo config at a fifth of its steps, as the protocol's
probes run, eval.metric none as the search sets it for probes) and a full run (all 40 steps, the
task metric scored by generation at the end, as `tunelm train` does).

Each checkout's own `tunelm.demo.demo_config` gives the config (the demo task: 200 generated
contract clauses, 40 held out; the recommended config for SmolLM2-135M-Instruct capped at the
demo's steps), so `--src` of the code before measures the demo as it was. The model is loaded
once per process, outside the clocks (a search worker loads it once). The clocks: every
`Trainer.evaluate` call (the eval-loss passes at eval steps and any final pass), every
`task_eval.generate` call, and `Trainer.train` less the evaluations inside it.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/eval_cost.py --src OLD/src --label before
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/eval_cost.py --label after
    .venv/bin/python benchmarks/eval_cost.py --what probe ...   # the probe alone (~2 min)
    .venv/bin/python benchmarks/eval_cost.py --what generate ...  # generation alone (base model)
    .venv/bin/python benchmarks/eval_cost.py --trial-dir runs/demo/trials/*   # a demo's runs

Writes benchmarks/data/eval_cost_<label>_<what>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
sys.path.insert(0, sys.argv[1])
args = json.loads(sys.argv[2])
from pathlib import Path
import transformers
from tunelm.base_model import SharedBase
from tunelm.config import from_dict
from tunelm.demo import demo_config
from tunelm.runner import run_trial, task_eval, trial

clock = {"eval": 0.0, "generate": 0.0, "save": 0.0, "eval_calls": 0, "generate_calls": 0,
         "save_calls": 0}
def timed(fn, key):
    def wrapped(*a, **kw):
        t = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            clock[key] += time.perf_counter() - t
            clock[key + "_calls"] += 1
    return wrapped
transformers.Trainer.evaluate = timed(transformers.Trainer.evaluate, "eval")
task_eval.generate = timed(task_eval.generate, "generate")
trial._save_model = timed(trial._save_model, "save")  # best/ is saved inside an evaluation

work = Path(args["work"])
cfg, _ = demo_config(work, "smollm2-135m", 200, 40, args["steps"], 3)
raw = cfg.to_dict()
raw["eval"]["metric"] = args["metric"]
cfg = from_dict(raw)
t = time.perf_counter()
loaded = SharedBase().get(cfg.model)
load_s = time.perf_counter() - t
if args["what"] == "generate":  # the base model's greedy answers to the 40 held-out prompts
    from tunelm.data import prepare
    model, tok = loaded
    data = prepare(tok, cfg.data, work)
    pairs = task_eval.prompts_and_answers(tok, data.eval_records, cfg.data, 40)
    t = time.perf_counter()
    outs = task_eval.generate(model, tok, [p for p, _ in pairs], cfg.eval.max_new_tokens,
                              cfg.eval.batch_size, "cpu", "fp32")
    print(json.dumps({"generate_seconds": time.perf_counter() - t, "prompts": len(pairs),
                      "batch_size": cfg.eval.batch_size, "max_new_tokens": cfg.eval.max_new_tokens,
                      "chars_out": sum(map(len, outs))}))
    sys.exit(0)
t = time.perf_counter()
result = run_trial(cfg, work / "run", loaded=loaded, progress=False, fraction=args["fraction"])
wall = time.perf_counter() - t
print(json.dumps({"wall": wall, "load": load_s, **clock, "result": {
    k: result.get(k) for k in ("best_eval_loss", "best_step", "final_step", "final_score",
                               "eval_examples", "task_metrics", "train_seconds")},
    "eval_examples_cfg": raw["eval"].get("pruning_examples"),
    "eval_steps": raw["train"]["eval_steps"]}))
"""


def measure(src: str, what: str, steps: int, threads: int) -> dict:
    """One trial in a fresh process on the checkout `src`: its seconds by part."""
    fraction, metric = (0.2, "none") if what == "probe" else (1.0, "json")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": src}
    with tempfile.TemporaryDirectory() as work:
        args = {"work": work, "steps": steps, "fraction": fraction, "metric": metric,
                "what": what}
        done = subprocess.run([sys.executable, "-c", CHILD, src, json.dumps(args)], env=env,
                              capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the {what} run failed:\n{done.stderr[-3000:]}")
    raw = json.loads(done.stdout.strip().splitlines()[-1])
    return raw if what == "generate" else split(raw)


def split(raw: dict) -> dict:
    """Seconds of training, evaluation, generation, saving best/ and the rest (data, adapters,
    result files), with their shares of the wall time of `run_trial`. Training is the runner's
    own clock (`train_seconds`: the steps, evaluations excluded); saving best/ happens inside
    an evaluation (the keeper's callback) and is taken out of it."""
    wall, gen, save = raw["wall"], raw["generate"], raw["save"]
    ev = raw["eval"] - save
    train = raw["result"]["train_seconds"]
    rest = wall - train - ev - gen - save
    parts = {"train": train, "eval": ev, "generate": gen, "save": save, "other": rest}
    return {"wall_seconds": round(wall, 1), "load_seconds": round(raw["load"], 1),
            "seconds": {k: round(v, 1) for k, v in parts.items()},
            "share": {k: round(v / wall, 3) for k, v in parts.items()},
            "evaluations": raw["eval_calls"], "generations": raw["generate_calls"],
            "saves": raw["save_calls"],
            "eval_steps": raw["eval_steps"], "pruning_examples": raw["eval_examples_cfg"],
            "result": raw["result"]}


def log_split(trial_dir: Path) -> dict:
    """The time split of a finished trial from its train.log timestamps (a demo's trials, say:
    no clock of ours needed): each evaluation runs from its `step N |` line to its `eval step N`
    line (saving best/ included), the final pass from the last line before `final score` to it;
    training is the trial's own train_seconds."""
    from datetime import datetime

    stamps = []
    for line in (Path(trial_dir) / "train.log").read_text().splitlines():
        try:
            when = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
        except ValueError:
            continue
        stamps.append((when, line[24:]))
    evals = final = 0.0
    for (before, _), (when, text) in zip(stamps, stamps[1:]):
        if "eval step" in text:
            evals += (when - before).total_seconds()
        elif "final score" in text:
            final += (when - before).total_seconds()
    result = json.loads((Path(trial_dir) / "result.json").read_text())
    wall, train = result["wall_seconds"], result["train_seconds"]
    parts = {"train": train, "eval": evals, "final_eval": final,
             "other": wall - train - evals - final}
    return {"wall_seconds": wall, "seconds": {k: round(v, 1) for k, v in parts.items()},
            "share": {k: round(v / wall, 3) for k, v in parts.items()},
            "final_step": result["final_step"], "eval_examples": result.get("eval_examples")}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", default=str(ROOT / "src"), help="the checkout's src/ to measure")
    ap.add_argument("--label", default="after", help="names the output file")
    ap.add_argument("--what", choices=("probe", "full", "both", "generate"), default="both",
                    help="generate: the base model's answers to the 40 held-out prompts alone")
    ap.add_argument("--steps", type=int, default=40, help="the demo's steps per run")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 1)))
    ap.add_argument("--trial-dir", nargs="+", help="only split these finished trials (their "
                    "train.log and result.json: a demo's runs/demo/trials/*) and print it")
    args = ap.parse_args(argv)
    if args.trial_dir:
        for d in args.trial_dir:
            print(d, json.dumps(log_split(Path(d))))
        return
    commit = subprocess.run(["git", "-C", args.src, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    out = {"src_commit": commit, "threads": args.threads, "load_average": os.getloadavg()}
    path = ROOT / "benchmarks" / "data" / f"eval_cost_{args.label}_{args.what}.json"
    for what in (("probe", "full") if args.what == "both" else (args.what,)):
        out[what] = measure(args.src, what, args.steps, args.threads)
        print(what, json.dumps(out[what].get("seconds")), json.dumps(out[what].get("share")),
              json.dumps(out[what].get("generate_seconds")), flush=True)
        out["load_average_after"] = os.getloadavg()
        path.write_text(json.dumps(out, indent=2) + "\n")  # each part as soon as it is measured
    print(f"written {path}")


if __name__ == "__main__":
    main()
