"""`tunelm demo`: the whole loop on the embedded default, on a laptop CPU.

1. `recommend` on the contract-extraction task and SmolLM2-135M-Instruct: the starting config
   with the reason and source of every value, printed;
2. a search around it with the default strategy (`adaptive`: the recommended config in full,
   then the learning rate a step up or down, going on in the direction that improved; the curve
   pruner stops a trial once its eval curve trails the best finished one beyond the measured
   noise), a budget of 3 trials;
3. the comparison on the held-out set: the base model, the recommended config and the best
   config found, scored the same way (exact match of the parsed JSON by greedy generation, eval
   loss): every finished trial scores its best checkpoint on the whole held-out set itself, and
   `tunelm.evaluate` scores the base model with the same settings; beside it, what the search
   tried: every trial, where it stopped and why;
4. the study's HTML report.

Everything lands in the study directory (runs/demo): the study, one directory per trial, the
base model's scores under compare/, demo.json with both tables and the time each part took, and
report.html.

The CPU sizing, chosen so that `make demo` runs in under 8 minutes from a fresh clone on a 2-core
CPU (docs/benchmarks.md): every trial is capped at the same number of steps (`steps`, 8 by
default: 32 examples at batch 4, where the recommended run is 150 steps), evaluated 4 times; that
cap is the only change to the recommended config apart from the size of the held-out set (24
by default), and it is the same for every trial. So short a run favours a higher learning rate
than the recommendation, which is set for the whole run: on this task the search finds it. The
evaluations at eval steps use 10 of the held-out examples (the same 10 in every trial); a run
that finishes is scored on all of them, and the search chooses on that score.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError, TrainingError
from .files import write_text_atomic

log = logging.getLogger("tunelm.demo")
LR, RANK, WARMUP = "train.learning_rate", "lora.r", "train.warmup_ratio"
PRUNING_EXAMPLES = 10  # the held-out examples of the evaluations at eval steps


@dataclass
class DemoResult:
    out: Path
    recommendation: str
    search: object
    rows: list[dict] = field(default_factory=list)  # label, learning_rate, exact_match, eval_loss
    tried: list[dict] = field(default_factory=list)  # every trial of the search
    report: Path | None = None
    seconds: float = 0.0
    split: dict = field(default_factory=dict)  # seconds per part
    steps: int = 0  # the cap of every run
    recommended_steps: int = 0  # the recommended run's own length, uncapped


def uncapped_steps(cfg, train_size: int) -> int:
    """How many steps the recommended run takes without the demo's cap."""
    import dataclasses

    from .plan import plan_steps

    return plan_steps(dataclasses.replace(cfg.train, max_steps=None), train_size).total_steps


def demo_config(work: Path, model: str, train_size: int, eval_size: int, steps: int,
                trials: int):
    """The recommended config for the demo task, capped for a CPU; returns (config, text)."""
    from .config import from_dict
    from .recommend import Request, recommend, to_text
    from .tasks import contracts

    paths = contracts.write_dataset(work / "data", train=train_size, eval=eval_size, seed=0)
    rec = recommend(Request(model=model, data=paths["train"], gpus=0))
    raw = rec.config_dict()
    # eval loss on the whole held-out set: the search chooses on the data the comparison scores
    raw["data"].update(train=paths["train"], eval=paths["eval"], max_eval_examples=eval_size)
    raw["data"].pop("task", None)
    # 4 evaluations a run: the curve pruner stops a clear loser at the first (a gap no noise
    # explains) and a closer one after 2 in a row behind, at half the run
    raw["train"].update(max_steps=steps, eval_steps=max(1, steps // 4))
    # runs judge themselves by eval loss. The evaluations at eval steps (what the curve pruner
    # reads) use 10 of the held-out examples, the same 10 in every trial: enough to see a rate
    # fall behind by +18% (docs/benchmarks.md); a run that finishes is scored on all of them
    # (eval.pruning_examples), eval loss for the search to choose on and exact match by
    # greedy generation for the comparison, all held-out examples in one batch (on the 2-core
    # CPU the base model took 37 s for 40 of them in one batch, 51 s in two of 20: a decoding
    # step costs far less than twice as much for twice the sequences)
    raw["eval"] = {"metric": "json", "max_examples": eval_size, "batch_size": eval_size,
                   "max_new_tokens": 96, "pruning_examples": min(PRUNING_EXAMPLES, eval_size)}
    raw["search"] = {"strategy": "adaptive", "pruner": "none", "curve_pruner": True,
                     "trials": trials, "timeout_minutes": None, "keep_top": trials}
    return from_dict(raw), to_text(rec)


def run_demo(out: str | Path = "runs/demo", *, model: str = "smollm2-135m",
             train_size: int = 200, eval_size: int = 24, steps: int = 8,
             trials: int = 3) -> DemoResult:
    """Recommend, search, compare and report on the embedded default (see the module doc)."""
    from .search import run_search

    if steps < 8:
        raise ConfigError(f"--steps must be >= 8 (4 evaluations of at least 2 steps), got {steps}")
    if trials < 1:
        raise ConfigError(f"--trials must be >= 1, got {trials}")
    started = time.time()
    out = Path(out)
    if (out / "study.db").exists():
        raise ConfigError(f"{out} already holds a demo study; remove it or give --out NEW_DIR")
    out.mkdir(parents=True, exist_ok=True)
    cfg, text = demo_config(out, model, train_size, eval_size, steps, trials)
    full_steps = uncapped_steps(cfg, train_size)
    log.info("the recommendation for %s on the contract-extraction task:\n%s", model, text)
    write_text_atomic(out / "recommendation.txt", text)
    split = {"recommend": round(time.time() - started, 1)}

    log.info("search: the adaptive default around the recommendation, %d trials of at most %d "
             "steps (the recommended run is %d)", trials, steps, full_steps)
    mark = time.time()
    search = run_search(cfg, out, live=True)
    split["search"] = round(time.time() - mark, 1)
    if search.best_trial_dir is None:
        raise TrainingError(f"the demo search finished no trial; see {out}/trials")
    tried = tried_rows(search.trials)
    mark = time.time()
    rows = compare(search, cfg.data.eval, out)
    split["scoring"] = round(time.time() - mark, 1)
    result = DemoResult(out, text, search, rows, tried, split=split, steps=steps,
                        recommended_steps=full_steps)
    mark = time.time()
    try:
        from .report import write_report

        result.report = write_report(out)
    except Exception as exc:  # noqa: BLE001 - the comparison stands without the report
        log.warning("the report could not be written: %s", exc)
    split["report"] = round(time.time() - mark, 1)
    result.seconds = round(time.time() - started, 1)
    log.info("what the search tried:\n%s", tried_table(tried))
    write_text_atomic(out / "demo.json", json.dumps(
        {"rows": rows, "tried": tried, "best_params": search.best_params,
         "stop_reason": search.stop_reason,
         "report": str(result.report) if result.report else None, "seconds": result.seconds,
         "split_seconds": split, "steps": steps, "recommended_steps": full_steps,
         "trials": trials, "train_size": train_size,
         "eval_size": eval_size, "model": model}, indent=2) + "\n")
    return result


def compare(search, eval_file: str, out: Path) -> list[dict]:
    """Base model, recommended config and best found, scored the same way on the held-out file:
    every finished trial scored its best checkpoint on all of it (`eval.metric` json: exact
    match of the parsed JSON; the final score's eval loss) before the search chose; the base
    model is scored here by `tunelm.evaluate` with the same config and eval settings. A run is
    shown once per role (the best found is often the recommended config itself)."""
    from .evaluate import evaluate_run

    rec = next((r for r in search.trials if r["tag"] == "recommended"), None)
    best_dir = Path(search.best_trial_dir)
    base = evaluate_run(best_dir, eval_file, metric="json", baseline=True, tuned=False,
                        out=out / "compare" / "base")["models"]["base"]
    runs = [("best found", best_dir)]
    if rec is not None and rec["state"] == "COMPLETE" and Path(rec["trial_dir"]) != best_dir:
        runs.insert(0, ("recommended", Path(rec["trial_dir"])))
    rows = [_row("base model", None, base)]
    rows += [_row(label, _lr_of(run_dir), own_score(run_dir)) for label, run_dir in runs]
    best = rows[-1]
    if len(runs) == 1:  # the search kept the recommended config (or it did not finish)
        kept = rec is not None and Path(rec["trial_dir"]) == best_dir
        best["note"] = ("the recommended config: no neighbour beat it" if kept else
                        f"the recommended config did not finish: {rec and rec['prune_reason']}")
        if kept:
            rows.insert(1, {**best, "label": "recommended", "note": "the same run as best found"})
    else:
        best["note"] = _brief(search.best_params)
    return rows


def own_score(run_dir: Path) -> dict:
    """A finished trial's score of its best checkpoint on the whole held-out set, as
    `evaluate` words it: {eval_loss, task}."""
    result = json.loads((Path(run_dir) / "result.json").read_text(encoding="utf-8"))
    return {"eval_loss": (result.get("final_score") or {}).get("eval_loss"),
            "task": result.get("task_metrics") or {}}


def tried_rows(trials: list[dict]) -> list[dict]:
    """Every trial the search ran: its values, how it ended, its eval loss and its cost. The
    eval loss of a run that finished is its final score on the whole held-out set (what the
    search chose on); of a stopped one, the best it reached at its evaluations, on the
    pruning subset; `eval_examples` says on how many examples."""
    out = []
    for t in trials:
        if t.get("not_run"):
            continue
        p = t["params"] or {}
        done = Path(t["trial_dir"] or "") / "result.json"
        result = json.loads(done.read_text()) if t["trial_dir"] and done.exists() else {}
        final = result.get("final_score") or {}
        on = (result.get("eval_examples") or {}).get("pruning")
        loss = result.get("best_eval_loss", t["value"])
        if final.get("eval_loss") is not None:
            loss, on = final["eval_loss"], final["examples"]
        out.append({"trial": t["number"], "tag": t["tag"], "learning_rate": p.get(LR),
                    "rank": p.get(RANK), "warmup": p.get(WARMUP), "state": t["state"],
                    "eval_loss": loss, "eval_examples": on,
                    "exact_match": (result.get("task_metrics") or {}).get("exact_match"),
                    "steps": result.get("final_step"), "seconds": t["cost_seconds"],
                    "why_stopped": t["prune_reason"]})
    return out


def _lr_of(run_dir: Path) -> float | None:
    import yaml

    raw = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    return raw.get("train", {}).get("learning_rate")


def _row(label: str, lr, scored: dict, note: str | None = None) -> dict:
    task = scored.get("task") or {}
    return {"label": label, "learning_rate": lr, "exact_match": task.get("exact_match"),
            "eval_loss": scored.get("eval_loss"), "note": note}


def _brief(params: dict) -> str:
    return ", ".join(f"{k.split('.')[-1]} {v:.3g}" for k, v in params.items()
                     if k in (LR, RANK, WARMUP))


def table(rows: list[dict]) -> str:
    """The comparison as a terminal table."""
    lines = [f"{'':<22} {'learning rate':>13} {'exact match':>12} {'eval loss':>10}"]
    for r in rows:
        lr = "" if r["learning_rate"] is None else f"{r['learning_rate']:.2e}"
        em = "n/a" if r["exact_match"] is None else f"{r['exact_match']:.1%}"
        loss = "n/a" if r["eval_loss"] is None else f"{r['eval_loss']:.4f}"
        lines.append(f"{r['label']:<22} {lr:>13} {em:>12} {loss:>10}"
                     + (f"  ({r['note']})" if r.get("note") else ""))
    return "\n".join(lines)


def tried_table(tried: list[dict]) -> str:
    """The search's trials as a terminal table (eval loss: a finished run's final score, a
    stopped one's best at its evaluations; `on`: how many held-out examples it is on; exact:
    a finished run's exact match on all of them)."""
    lines = [f"{'trial':>5}  {'learning rate':>13} {'rank':>4} {'state':<9} {'steps':>5} "
             f"{'eval loss':>10} {'on':>3} {'exact':>6} {'seconds':>7}  why it stopped"]
    for t in tried:
        lr = "" if t["learning_rate"] is None else f"{t['learning_rate']:.2e}"
        loss = "n/a" if t["eval_loss"] is None else f"{t['eval_loss']:.4f}"
        em = "" if t.get("exact_match") is None else f"{t['exact_match']:.1%}"
        secs = "" if t["seconds"] is None else f"{t['seconds']:.0f}"
        on = t.get("eval_examples") or ""
        lines.append(f"{t['trial']:>5}  {lr:>13} {t['rank'] or '':>4} {t['state']:<9} "
                     f"{t['steps'] or '':>5} {loss:>10} {on:>3} {em:>6} {secs:>7}  "
                     f"{t['why_stopped'] or ''}")
    return "\n".join(lines)
