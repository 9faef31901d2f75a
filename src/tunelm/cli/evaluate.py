"""`tunelm evaluate RUN|STUDY --data FILE`: score an adapter and the base model (`evaluate.evaluate_run`)."""

from __future__ import annotations

from ..config import TASK_METRICS
from ._common import command


def add(sub) -> None:
    p = command(
        sub, "evaluate", "score a run's (or a study's best) adapter, and the base model, on a file",
        """
            tunelm evaluate runs/demo --data reviewed.jsonl --baseline
            tunelm evaluate runs/contracts --data holdout.csv      # a study: its best trial
            tunelm evaluate runs/demo --data holdout.jsonl --metric exact --max-examples 200
            tunelm evaluate postgresql://user:pw@host/db --study contracts --data holdout.jsonl
        """,
    )
    p.add_argument("target", metavar="RUN|STUDY",
                   help="run directory (config.yaml, best/) or study directory (study.db)")
    p.add_argument("--data", required=True,
                   help="held-out JSONL or CSV file in any format tunelm reads")
    p.add_argument("--baseline", action="store_true", help="also score the base model")
    p.add_argument("--metric", metavar="METRIC",
                   help=f"task metric: {' | '.join(TASK_METRICS)} | package.module:function "
                        "(default: the run's)")
    p.add_argument("--max-examples", type=int,
                   help="generate for at most this many examples (default: all)")
    p.add_argument("--study", help="study name (with a storage URL)")
    p.add_argument("--out", help="directory (default: RUN/eval-<data file name>)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..evaluate import evaluate_run

    result = evaluate_run(args.target, args.data, baseline=args.baseline, out=args.out,
                          metric=args.metric, max_examples=args.max_examples,
                          study_name=args.study)
    _print_evaluation(result)
    return 0


def _print_evaluation(result: dict) -> None:
    def cell(value, kind):
        if value is None:
            return "n/a"
        return f"{value:.1%}" if kind == "share" else f"{value:.4f}"

    def change(row):
        if row["change"] is None:
            return ""
        if row["kind"] != "share":
            return f"{row['change']:+.4f}"
        return f"{row['change'] * 100:+.1f} pts"

    has_base = any(r["base"] is not None for r in result["comparison"])
    head = f"{'':<22}" + (f"{'base':>10}" if has_base else "") + f"{'tuned':>10}"
    lines = [f"{result['run']} on {result['data']}: {result['examples']} examples, "
             f"metric {result['metric']}", head + ("     change" if has_base else "")]
    for r in result["comparison"]:
        name = ("  " if r["indent"] else "") + r["figure"]
        base = f"{cell(r['base'], r['kind']):>10}" if has_base else ""
        lines.append(f"{name:<22}{base}{cell(r['tuned'], r['kind']):>10}  {change(r)}".rstrip())
    lines.append(f"written to {result['out']} (evaluation.json, evaluation_predictions.jsonl)")
    print("\n".join(lines))
