"""`tunelm demo`: the whole loop on the embedded default, on a laptop CPU.

1. `recommend` on the contract-extraction task and SmolLM2-135M-Instruct: the starting config
   with the reason and source of every value, printed;
2. a search around it (the staged protocol: three learning rates, rank r vs 2r, warmup if the
   loss was spiky, then the final run), sized to about ten minutes on a 2-core CPU;
3. the comparison on the eval set: the base model, the recommended config, a deliberately too
   high learning rate (1e-2) and the best config found, each scored the same way (exact match of
   the parsed JSON, eval loss) by `tunelm.evaluate`;
4. the study's HTML report.

Everything lands in the study directory (runs/demo): the study, one directory per trial, the
comparison runs under compare/, demo.json with the table, and report.html.

The CPU sizing: every run, trial and comparison alike, is capped at the same number of steps
(`steps`, 40 by default: 160 examples at batch 4); that cap is the only change to the
recommended config apart from a shorter eval set, and it is the same for all of them.
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
TOO_HIGH_LR = 1e-2


@dataclass
class DemoResult:
    out: Path
    recommendation: str
    search: object
    rows: list[dict] = field(default_factory=list)  # label, learning_rate, exact_match, eval_loss
    report: Path | None = None
    seconds: float = 0.0


def demo_config(work: Path, model: str, train_size: int, eval_size: int, steps: int):
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
    raw["train"].update(max_steps=steps, eval_steps=max(1, steps // 5))
    # runs judge themselves by eval loss; exact match is scored once per model at the end
    raw["eval"] = {"metric": "none", "max_examples": eval_size, "batch_size": 20,
                   "max_new_tokens": 96}
    raw["search"] = {"strategy": "protocol", "pruner": "none", "trials": None,
                     "timeout_minutes": None, "keep_top": 8}
    return from_dict(raw), to_text(rec)


def run_demo(out: str | Path = "runs/demo", *, model: str = "smollm2-135m",
             train_size: int = 200, eval_size: int = 40, steps: int = 40) -> DemoResult:
    """Recommend, search, compare and report on the embedded default (see the module doc)."""
    from .evaluate import evaluate_run
    from .runner import run_trial
    from .search import run_search
    from .search.space import apply
    from .search.study import run_fixed_trial

    if steps < 10:
        raise ConfigError(f"--steps must be >= 10 (the protocol probes 20% of them), got {steps}")
    started = time.time()
    out = Path(out)
    if (out / "study.db").exists():
        raise ConfigError(f"{out} already holds a demo study; remove it or give --out NEW_DIR")
    out.mkdir(parents=True, exist_ok=True)
    cfg, text = demo_config(out, model, train_size, eval_size, steps)
    log.info("the recommendation for %s on the contract-extraction task:\n%s", model, text)
    write_text_atomic(out / "recommendation.txt", text)

    log.info("search: the staged protocol around the recommendation, %d steps a full run", steps)
    search = run_search(cfg, out, live=True)
    if search.best_trial_dir is None:
        raise TrainingError(f"the demo search finished no trial; see {out}/trials")
    best_params = search.best_params

    # The recommended config at full length joins the study when the protocol moved away from
    # it: the search then keeps the better of the two by eval loss, as a careful tuner keeps the
    # baseline among the candidates (short probes favour high learning rates).
    recommended = {"train.learning_rate": cfg.train.learning_rate, "lora.r": cfg.lora.r,
                   "train.warmup_ratio": cfg.train.warmup_ratio}
    pick, searched = dict(search.best_params), search.stop_reason
    if any(pick.get(k) != v for k, v in recommended.items()):
        log.info("the protocol picked %s; the recommended config runs in full beside it",
                 json.dumps({k: pick.get(k) for k in recommended}))
        search = run_fixed_trial(out, recommended, tag="recommended")
    by_tag = {r["tag"]: r for r in search.trials if r["state"] == "COMPLETE"}
    rec_row = by_tag.get("recommended") or by_tag.get("final")
    runs = {"best found": Path(search.best_trial_dir), "recommended": Path(rec_row["trial_dir"])}
    best_params = search.best_params
    best_tag = next((r["tag"] for r in search.trials
                     if r["trial_dir"] == search.best_trial_dir), None)

    # the deliberately bad comparison stays outside the study
    stopped = {}
    label = "too-high lr (1e-2)"
    runs[label] = out / "compare" / "too-high"
    log.info("comparison run: learning rate %g", TOO_HIGH_LR)
    try:
        run_trial(apply(cfg, {"train.learning_rate": TOO_HIGH_LR}), runs[label], progress=False)
    except TrainingError as exc:
        stopped[label] = exc.result.get("stop_reason") if exc.result else str(exc)

    # every model scored the same way, on the same held-out file; a run directory only once
    scores: dict[Path, dict] = {}
    rows = []
    for label in ["best found", "recommended", "too-high lr (1e-2)"]:
        run_dir = runs[label]
        if not (run_dir / "best").exists():
            rows.append({"label": label, "learning_rate": _lr_of(run_dir), "exact_match": None,
                         "eval_loss": None, "note": f"no checkpoint: {stopped.get(label)}"})
            continue
        if run_dir not in scores:
            scores[run_dir] = evaluate_run(run_dir, cfg.data.eval, metric="json",
                                           baseline=label == "best found",
                                           out=out / "compare" / f"eval-{len(scores)}")
        models = scores[run_dir]["models"]
        if "base" in models and not rows:
            rows.append(_row("base model", None, models["base"]))
        note = stopped.get(label)
        if label == "best found":
            note = {"final": "the protocol's final run", "recommended": "the recommended config, "
                    "kept: the protocol's pick was worse at full length"}.get(best_tag, best_tag)
        rows.append(_row(label, _lr_of(run_dir), models["tuned"], note))
    order = ["base model", "recommended", "too-high lr (1e-2)", "best found"]
    rows.sort(key=lambda r: order.index(r["label"]))
    result = DemoResult(out, text, search, rows, seconds=round(time.time() - started, 1))
    try:
        from .report import write_report

        result.report = write_report(out)
    except Exception as exc:  # noqa: BLE001 - the comparison stands without the report
        log.warning("the report could not be written: %s", exc)
    result.seconds = round(time.time() - started, 1)
    write_text_atomic(out / "demo.json", json.dumps(
        {"rows": rows, "best_params": best_params, "best_tag": best_tag,
         "protocol_pick": pick, "stop_reason": searched,
         "report": str(result.report) if result.report else None, "seconds": result.seconds,
         "steps": steps, "train_size": train_size, "eval_size": eval_size, "model": model},
        indent=2) + "\n")
    return result


def _lr_of(run_dir: Path) -> float | None:
    import yaml

    raw = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    return raw.get("train", {}).get("learning_rate")


def _row(label: str, lr, scored: dict, note: str | None = None) -> dict:
    task = scored.get("task") or {}
    return {"label": label, "learning_rate": lr, "exact_match": task.get("exact_match"),
            "eval_loss": scored.get("eval_loss"), "note": note}


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
