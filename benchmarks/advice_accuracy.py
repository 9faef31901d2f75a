"""Is `tunelm diagnose`'s advice right? Every recorded run of the grids in benchmarks/data, scored.

Each run of a grid (benchmarks/data/grid-*.json: whole curves kept) is labelled by where its
learning rate sits against its grid's best:
- **near**: within the band of rates of the runs whose result is within 2% (relative eval loss)
  of the grid's best, or, on the contract task, within 1 point of the best exact match;
- **too low** / **too high**: below / above that band.
`diagnose` is replayed on the run's curves (no training), and the direction of its rate advice
(raise / keep / lower: the most important warning or severe finding that changes the rate) is
compared with the label: raise is right for too low, lower for too high, keep is never wrong but
is counted apart. Also scored: no severe verdict on a grid's best run, never "lower" in the band.

    PYTHONPATH=src .venv/bin/python benchmarks/advice_accuracy.py            # table, seconds
    PYTHONPATH=src .venv/bin/python benchmarks/advice_accuracy.py --lr-find \
        --json benchmarks/data/advice_accuracy.json       # what docs/benchmarks.md shows
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "data"
LR = "train.learning_rate"
BAND_LOSS = 0.02  # within 2% (relative) of the best eval loss
BAND_EM = 0.01  # within 1 point of the best exact match
LABELS = ("too low", "near", "too high")
DIRECTIONS = ("raise", "keep", "lower")
RIGHT = {"too low": "raise", "near": "keep", "too high": "lower"}
# training examples of the grids recorded before epochs were kept (lr_sweep.task_data): their
# epochs are step / (examples / batch), as tunelm's metrics.jsonl logs them
TRAIN_EXAMPLES = {"contracts": 240, "docstrings": 240}


def score(run: dict, by_em: bool) -> float:
    """Higher is better: exact match, or minus the best eval loss (a diverged run: -inf)."""
    if by_em:
        return run.get("exact_match") or 0.0
    loss = run.get("best_eval_loss")
    return -loss if loss is not None and math.isfinite(loss) else -math.inf


def within(s: float, best: float, by_em: bool) -> bool:
    if by_em:
        return s >= best - BAND_EM
    return s >= best * (1 + BAND_LOSS)  # s and best are negative losses


def label_runs(runs: list[dict], by_em: bool) -> tuple[list[str], tuple[float, float], int]:
    """(a label per run, the band of rates (low, high), the index of the best run)."""
    scores = [score(r, by_em) for r in runs]
    best_i = max(range(len(runs)), key=lambda i: (scores[i], score(runs[i], False)))  # ties: loss
    near = [r["params"][LR] for r, s in zip(runs, scores) if within(s, scores[best_i], by_em)]
    low, high = min(near), max(near)
    labels = ["too low" if r["params"][LR] < low else "too high" if r["params"][LR] > high
              else "near" for r in runs]
    return labels, (low, high), best_i


def table_of(run: dict, grid: dict):
    """The MetricsTable diagnose would read from this run's trial directory."""
    from tunelm.diagnose import EvalRow, MetricsTable, TrainRow

    cfg = grid["config"]
    train_cfg = {**cfg["train"], **{k.split(".", 1)[1]: v for k, v in run["params"].items()
                                    if k.startswith("train.")}}
    hparams = {k: train_cfg.get(k) for k in ("learning_rate", "warmup_ratio", "epochs",
                                              "max_steps", "early_stopping_patience",
                                              "max_grad_norm", "weight_decay", "batch_size",
                                              "grad_accum")}
    hparams["dropout"] = cfg["lora"].get("dropout")
    hparams["method"] = cfg["model"].get("method")
    with_epoch = "epoch" in TrainRow.__dataclass_fields__  # older code has no epoch field
    per_epoch = math.ceil(TRAIN_EXAMPLES.get(grid["task"], 0) / train_cfg["batch_size"])
    train = [TrainRow(int(t[0]), t[1], None, t[2],
                      *([t[3] if len(t) > 3 else t[0] / per_epoch if per_epoch else None]
                        if with_epoch else []))
             for t in run["train"] if t[1] is not None]
    evals = [EvalRow(int(e[0]), e[1]) for e in run["evals"] if e[1] is not None]
    return MetricsTable(train, evals, source=run["key"], kind="tunelm",
                        total_steps=run.get("planned_steps"),
                        hparams={k: v for k, v in hparams.items() if v is not None})


def direction(diagnosis) -> tuple[str, str | None]:
    """(raise / keep / lower, the code of the finding that says so)."""
    for f in diagnosis.findings:
        if f.severity == "info":
            continue
        factor = (f.lr_change if hasattr(f, "lr_change")  # older code: read the text
                  else _parsed_factor(f.recommendation))
        if factor:
            return ("raise" if factor > 1 else "lower"), f.code
    return "keep", None


def _parsed_factor(text: str) -> float | None:
    """The rate change a recommendation opens with, for code that does not record one."""
    for verb, factor in (("lower train.learning_rate", 0.5), ("raise train.learning_rate", 2.0)):
        if text.startswith(verb) or f"; {verb}" in text or f": {verb}" in text:
            return factor
    return None


def evaluate(paths: list[Path]) -> dict:
    from tunelm.diagnose import diagnose_table

    rows = []
    for path in paths:
        grid = json.loads(path.read_text())
        by_em = grid["task"] == "contracts"
        labels, band, best_i = label_runs(grid["runs"], by_em)
        for i, (run, label) in enumerate(zip(grid["runs"], labels)):
            d = diagnose_table(table_of(run, grid))
            way, code = direction(d)
            severe = [f.code for f in d.findings if f.severity == "severe"]
            rows.append({"grid": grid["task"], "key": run["key"], "lr": run["params"][LR],
                         "label": label, "best": i == best_i, "verdict": d.verdict,
                         "severe": severe, "advice": way, "by": code,
                         "result": run["exact_match"] if by_em else run["best_eval_loss"],
                         "band": list(band)})
    return summarise(rows)


def summarise(rows: list[dict]) -> dict:
    confusion = Counter((r["label"], r["advice"]) for r in rows)
    right = sum(r["advice"] == RIGHT[r["label"]] for r in rows)
    right_or_keep = sum(r["advice"] in (RIGHT[r["label"]], "keep") for r in rows)
    lower_near = [r for r in rows if r["label"] == "near" and r["advice"] == "lower"]
    severe_best = [r for r in rows if r["best"] and r["severe"]]
    wrong = [r for r in rows if r["advice"] not in (RIGHT[r["label"]], "keep")]
    grids = {}
    for r in rows:
        g = grids.setdefault(r["grid"], {"runs": 0, "right_or_keep": 0, "band": r["band"],
                                         "verdicts": Counter()})
        g["runs"] += 1
        g["right_or_keep"] += r["advice"] in (RIGHT[r["label"]], "keep")
        g["verdicts"][r["verdict"]] += 1
    severe_findings = [r for r in rows if r["severe"]]
    by_code: dict = {}
    for r in rows:
        if r["by"]:
            tally = by_code.setdefault(r["by"], [0, 0])
            tally[0] += r["advice"] == RIGHT[r["label"]]
            tally[1] += 1
    return {
        "by_finding": {k: tuple(v) for k, v in sorted(by_code.items())},
        "runs": len(rows), "right": right, "right_or_keep": right_or_keep,
        "right_or_keep_share": round(right_or_keep / max(len(rows), 1), 3),
        "lower_in_band": len(lower_near), "severe_on_best": len(severe_best),
        "severe_findings": len(severe_findings),
        "severe_wrong": sum(r["advice"] not in (RIGHT[r["label"]], "keep")
                            or r["label"] == "near" for r in severe_findings),
        "confusion": {lab: {d: confusion[(lab, d)] for d in DIRECTIONS} for lab in LABELS},
        "grids": {k: {**v, "verdicts": dict(v["verdicts"])} for k, v in grids.items()},
        "disagreements": wrong, "rows": rows,
    }


def lr_find_records() -> dict[str, dict]:
    """lr-find records per grid: benchmarks/data/lr_find_grids.json (run on each grid's config by
    record_licenses.py), and the demo's run (presets/demo.yaml: the contract task) for contracts
    when the grid's own is missing."""
    out = {}
    grids = DATA / "lr_find_grids.json"
    if grids.exists():
        out.update({k: v for k, v in json.loads(grids.read_text())["grids"].items()
                    if v.get("suggested_lr")})
    demo = DATA / "lr_find_demo.json"
    if "contracts" not in out and demo.exists():
        out["contracts"] = {**json.loads(demo.read_text())["lr_find"], "source": "lr_find_demo"}
    return out


def lr_find_ratios(paths: list[Path]) -> dict:
    """Per grid: lr-find's suggestions against the grid's band of near rates and best rate, and
    whether recommend's rate (the grid's centre) sits in the band."""
    records = lr_find_records()
    rows = {}
    for path in paths:
        grid = json.loads(path.read_text())
        _, (low, high), best_i = label_runs(grid["runs"], grid["task"] == "contracts")
        best = grid["runs"][best_i]["params"][LR]
        rec_lr = grid["recommended"][LR]
        row = {"band": [low, high], "best": best, "recommended": rec_lr,
               "recommended_in_band": low <= rec_lr <= high}
        found = records.get(grid["task"])
        if found:
            sug = found["suggestions"]
            for name, lr in (("suggestion", sug["steepest"]["lr"]),
                             ("steepest_point", sug["steepest"]["point_lr"]),
                             ("valley", sug["valley"]["lr"])):
                row[name] = {"lr": lr, "best_over_it": best / lr,
                             "band_over_it": [low / lr, high / lr], "in_band": low <= lr <= high}
            row["lr_find_source"] = found.get("source", "lr_find_grids")
            row["lr_find_settings"] = [found["min_lr"], found["max_lr"], found["steps"]]
        rows[grid["task"]] = row
    return rows


def lr_find_markdown(rows: dict) -> str:
    out = ["| grid | band of near rates | best | recommend | lr-find suggestion (best / it) "
           "| steepest point (best / it) | valley (best / it) |", "|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        cells = [f"{r[k]['lr']:.2g} ({r[k]['best_over_it']:.2g}x{', in band' if r[k]['in_band'] else ''})"
                 if k in r else "not run" for k in ("suggestion", "steepest_point", "valley")]
        out.append(f"| {name} | {r['band'][0]:g} - {r['band'][1]:g} | {r['best']:g} | "
                   f"{r['recommended']:g}{' (in band)' if r['recommended_in_band'] else ''} | "
                   + " | ".join(cells) + " |")
    return "\n".join(out)


def markdown(s: dict) -> str:
    out = [f"rate advice right or keep: **{s['right_or_keep']}/{s['runs']}** "
           f"({s['right_or_keep_share']:.0%}); right direction (not keep): {s['right']}; "
           f"\"lower\" within the near band: {s['lower_in_band']}; severe finding on a grid's "
           f"best run: {s['severe_on_best']}; runs with a severe finding: {s['severe_findings']} "
           f"({s['severe_wrong']} of them near the best or told the wrong way)", "",
           "rate advice by finding (right / given): " + ", ".join(
               f"{k} {r}/{n}" for k, (r, n) in s["by_finding"].items()), "",
           "| grid | runs | band of near rates | right or keep | verdicts |", "|---|---|---|---|---|"]
    for name, g in s["grids"].items():
        verdicts = ", ".join(f"{k} {v}" for k, v in sorted(g["verdicts"].items()))
        out.append(f"| {name} | {g['runs']} | {g['band'][0]:g} - {g['band'][1]:g} | "
                   f"{g['right_or_keep']}/{g['runs']} | {verdicts} |")
    out += ["", "| label \\ advice | " + " | ".join(DIRECTIONS) + " |", "|---|---|---|---|"]
    for lab in LABELS:
        out.append(f"| {lab} | " + " | ".join(str(s["confusion"][lab][d]) for d in DIRECTIONS)
                   + " |")
    if s["disagreements"]:
        out += ["", "| grid | run | label | verdict | advice (finding) |", "|---|---|---|---|---|"]
        out += [f"| {r['grid']} | {r['key']} | {r['label']} | {r['verdict']} | {r['advice']} "
                f"({r['by']}) |" for r in s["disagreements"]]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the full result (every run) here")
    parser.add_argument("--grids", default=str(DATA / "grid-*.json"), help="a glob of grids")
    parser.add_argument("--rows", action="store_true", help="print every run, not only the table")
    parser.add_argument("--lr-find", action="store_true",
                        help="also lr-find's suggestions against each grid's best rate")
    parser.add_argument("--measured", action="store_true",
                        help="print the table of src/tunelm/diagnose/measured.py")
    args = parser.parse_args()
    pattern = Path(args.grids)
    paths = sorted(pattern.parent.glob(pattern.name))
    s = evaluate(paths)
    print(markdown(s))
    if args.rows:
        for r in s["rows"]:
            print(f"{r['grid']:10} {r['key']:32} {r['label']:8} {r['verdict']:11} "
                  f"{r['advice']:5} {r['by'] or '':14} severe={r['severe']} result={r['result']}")
    if args.lr_find:
        s["lr_find"] = lr_find_ratios(paths)
        print("\n" + lr_find_markdown(s["lr_find"]))
    if args.measured:
        print(f"\nRUNS = {s['runs']}\nGRIDS = {tuple(sorted(s['grids']))}\nRATE_ADVICE = "
              f"{s['by_finding']}")
    if args.json:
        Path(args.json).write_text(json.dumps(s, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
