"""The `tunelm` command line: thin commands, each calling one library function.

Exit codes: 0 success, 2 bad input (config, data, arguments), 1 a run that failed.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import textwrap
from pathlib import Path

from . import __version__
from .errors import EXIT_BAD_INPUT, EXIT_FAILED, TunelmError

log = logging.getLogger("tunelm")


class _Parser(argparse.ArgumentParser):
    """argparse exits with 2 on bad arguments already; keep its message, add a hint."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\nRun '{self.prog} --help' for examples.\n")


def _examples(text: str) -> str:
    return "examples:\n" + textwrap.indent(textwrap.dedent(text).strip(), "  ")


def _command(parent, name: str, help: str, examples: str) -> argparse.ArgumentParser:
    """A subcommand whose --help ends with its examples."""
    return parent.add_parser(name, help=help, epilog=_examples(examples),
                             formatter_class=argparse.RawDescriptionHelpFormatter)


def _add_config_args(p):
    p.add_argument("config", help="YAML config (see presets/)")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a field, e.g. --set train.learning_rate=3e-4 (repeatable)",
    )


def _report_to(args) -> list[str]:
    """--report-to as the override of train.report_to (validated with the config)."""
    return [f"train.report_to={args.report_to}"] if args.report_to is not None else []


def _add_report_to(p):
    p.add_argument("--report-to", metavar="TRACKERS",
                   help="log every run to experiment trackers: none, or any of wandb, mlflow, "
                        "tensorboard, comma-separated (train.report_to)")


def cmd_train(args) -> int:
    from .config import load_config
    from .runner import run_trial

    cfg = load_config(args.config, args.overrides + _report_to(args))
    out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
    result = run_trial(cfg, out, progress=not args.quiet)
    _print_result(result, out)
    return 0


def _print_result(result: dict, out: Path) -> None:
    task = result.get("task_metrics") or {}
    base = result.get("baseline_task_metrics") or {}
    lines = [
        f"trial directory   {out}",
        f"stop reason       {result['stop_reason']}",
        f"best eval loss    {_fmt(result['best_eval_loss'])} at step {result['best_step']}",
        f"final eval loss   {_fmt(result['final_eval_loss'])} at step {result['final_step']}",
    ]
    if "exact_match" in task:
        lines.append(f"exact match       {task['exact_match']:.1%} (best checkpoint, n={task['n']})")
    if "exact_match" in base:
        lines.append(f"  base model      {base['exact_match']:.1%}")
    lines.append(
        f"throughput        {_fmt(result['tokens_per_s'], '.0f')} tokens/s over "
        f"{result['train_seconds']:.0f} s of training ({result['wall_seconds']:.0f} s in all)"
    )
    print("\n".join(lines))


def _fmt(x, spec=".4f"):
    return "n/a" if x is None else format(x, spec)


def cmd_validate(args) -> int:
    from .config import load_config
    from .models import resolve_source

    cfg = load_config(args.config, args.overrides)
    source = resolve_source(cfg.model.name)
    for key in ("train", "eval"):
        path = getattr(cfg.data, key)
        if path is not None and not Path(path).expanduser().exists():
            from .errors import DataError

            raise DataError(f"data.{key}: file {path} does not exist")
    if args.print:
        print(cfg.to_yaml())
    print(f"{args.config}: valid (model: {source.kind} {cfg.model.name}, method {cfg.model.method})")
    return 0


def cmd_recommend(args) -> int:
    from .recommend import RENDERERS, Request, measure_throughput, recommend

    req = Request(
        model=args.model, data=args.data, examples=args.examples, avg_tokens=args.avg_tokens,
        method=args.method, gpus=args.gpus, gpu_memory=args.gpu_memory,
        task_type=args.task_type, alpha=args.alpha, rank=args.rank, use_rslora=args.rslora,
        effective_batch=args.batch,
    )
    rec = recommend(req)
    if args.measure:
        req.throughput = measure_throughput(rec.config())
        rec = recommend(req)
    text = RENDERERS[args.format](rec)
    if args.out:
        from .files import write_text_atomic

        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out, text)
        print(f"written to {out}", file=sys.stderr)
    else:
        print(text, end="")
    return 0


def _search_config(args):
    """(config or None, study directory). A directory continues its study with the stored
    config; budget flags (--trials, --budget-hours, ...) still apply to it."""
    from .config import apply_overrides, from_dict, load_config, parse_overrides

    target = Path(args.config)
    flags = [f"search.{k}={v}" for k, v in (
        ("strategy", args.strategy), ("trials", args.trials), ("budget_hours", args.budget_hours),
        ("timeout_minutes", args.timeout), ("pruner", args.pruner), ("workers", args.workers),
        ("isolate", True if args.isolate else None)) if v is not None]
    flags += _report_to(args)  # workers follow the study's stored config
    if target.is_dir():
        if args.overrides or args.strategy:
            from .errors import ConfigError

            raise ConfigError("a study directory keeps its config and strategy: --set and "
                              "--strategy apply to a new study (give a CONFIG file)")
        if not flags:
            return None, target
        from .search import open_study

        _, stored = open_study(None, target, args.storage, args.study)
        return from_dict(apply_overrides(stored.to_dict(), parse_overrides(flags))), target
    cfg = load_config(target, args.overrides + flags)
    return cfg, Path(args.out) if args.out else Path("runs") / (args.study or target.stem)


def cmd_search(args) -> int:
    from .search import describe, run_search

    cfg, out = _search_config(args)
    if args.dry_run:
        return _dry_run(cfg, out)
    result = run_search(cfg, out, storage=args.storage, study_name=args.study,
                        progress=not args.quiet, live=True)
    print(describe(result))
    return 0


def _dry_run(cfg, out) -> int:
    from .search.space import dims_of, grid

    if cfg is None:
        from .search import open_study

        _, cfg = open_study(None, out)
    dims = dims_of(cfg)
    print(f"strategy {cfg.search.strategy}, pruner {cfg.search.pruner}, objective "
          f"{cfg.search.objective}; budget: trials {cfg.search.trials}, device-hours "
          f"{cfg.search.budget_hours}, minutes {cfg.search.timeout_minutes}")
    for d in dims:
        what = (f"one of {list(d.choices)}" if d.kind == "categorical" else
                f"{'log-uniform' if d.log else 'uniform'} {d.low:g} .. {d.high:g}")
        print(f"  {d.name:<28} {what}")
    if cfg.search.strategy == "grid":
        total = math.prod(len(v) for v in grid(dims, cfg.search.grid_points).values())
        print(f"grid: {total} configurations")
    total = None
    if cfg.search.strategy == "grid":
        total = math.prod(len(v) for v in grid(dims, cfg.search.grid_points).values())
    if cfg.search.strategy == "protocol":
        print("plan: 3 learning rates on 20% of the steps, rank r vs 2r on 20%, warmup 0.05 vs "
              "0.1 on 20% if the loss was spiky, then the final run: 1.8 to 2.0 full runs")
    if cfg.search.strategy == "pbt":
        s = cfg.search
        print(f"plan: {s.pbt_population} members x {s.pbt_generations} generations of "
              f"{s.pbt_generation_steps} steps: {s.pbt_population * s.pbt_generations} trials, "
              f"{s.pbt_population * s.pbt_generations * s.pbt_generation_steps} training steps")
    from .errors import DataError, ModelError
    from .search.estimate import describe_cost, estimate_cost

    try:
        print(describe_cost(estimate_cost(cfg, total)))
    except (DataError, ModelError) as exc:  # the plan stands; the cost needs the data and model
        print(f"cost: not estimated: {exc}")
    return 0


def cmd_worker(args) -> int:
    from .search import describe, run_search

    out = Path(args.out) if args.out else Path("runs") / args.study
    result = run_search(None, out, storage=args.storage, study_name=args.study,
                        progress=not args.quiet, live=True, worker=True)
    print(describe(result))
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo, table

    result = run_demo(args.out, model=args.model, train_size=args.train, eval_size=args.eval,
                      steps=args.steps)
    print(f"\nthe comparison on {args.eval} held-out contracts (exact match of the parsed JSON; "
          "eval loss on the completion tokens):")
    print(table(result.rows))
    print(f"\nstudy directory   {result.out}")
    if result.report:
        print(f"report            {result.report}")
    print(f"took              {result.seconds / 60:.1f} minutes")
    return 0


def cmd_best(args) -> int:
    from .search import best_config

    print(best_config(args.study, args.name).to_yaml(), end="")
    return 0


def cmd_export(args) -> int:
    from .export import export

    for path in export(args.source, args.to, args.out, study_name=args.study):
        print(path)
    return 0


def cmd_report(args) -> int:
    from .report import write_report

    path = write_report(args.study_dir, storage=args.storage, study_name=args.study, out=args.out)
    print(f"report written to {path} (plots in {path.parent / 'plots'})")
    return 0


def cmd_diagnose(args) -> int:
    from .diagnose import RENDERERS, diagnose

    print(RENDERERS[args.format](diagnose(args.path)), end="")
    return 0  # a verdict, whatever it is, is a successful report


def cmd_lr_find(args) -> int:
    from .config import load_config
    from .lr_find import check_range, run_lr_find

    check_range(args.min_lr, args.max_lr, args.steps)  # before loading anything
    cfg = load_config(args.config, args.overrides)
    out = Path(args.out) if args.out else Path("runs") / f"{Path(args.config).stem}-lr-find"
    record = run_lr_find(cfg, out, min_lr=args.min_lr, max_lr=args.max_lr, steps=args.steps,
                         progress=not args.quiet)
    steep, valley = record["suggestions"]["steepest"], record["suggestions"]["valley"]
    lines = [f"suggested learning rate  {steep['lr']:.2e}  ({steep['how']})",
             f"valley rule              {valley['lr']:.2e}  ({valley['how']})",
             f"test                     {record['steps_run']} of {record['steps']} steps, "
             f"{record['stop_reason']}, {record['wall_seconds']:.0f} s"]
    if record["diverged_at_lr"]:
        lines.append(f"diverged at              {record['diverged_at_lr']:.2e}  (train well "
                     "below it; read the suggestion as the low end of the range to try)")
    lines.append(f"written                  {out / 'lr_find.json'}, {out / 'lr_find.png'}")
    print("\n".join(lines))
    return 0


def cmd_evaluate(args) -> int:
    from .evaluate import evaluate_run

    result = evaluate_run(args.target, args.data, baseline=args.baseline, out=args.out,
                          metric=args.metric, max_examples=args.max_examples,
                          study_name=args.study)
    _print_evaluation(result)
    return 0


def _print_evaluation(result: dict) -> None:
    def cell(value, kind):
        if value is None:
            return "n/a"
        return f"{value:.4f}" if kind == "loss" else f"{value:.1%}"

    def change(row):
        if row["change"] is None:
            return ""
        return f"{row['change']:+.4f}" if row["kind"] == "loss" else f"{row['change'] * 100:+.1f} pts"

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


def cmd_transfer(args) -> int:
    from .transfer import run_transfer, table

    result = run_transfer(args.source, args.to_model, top=args.top, fraction=args.fraction,
                          out=args.out, double_rank=args.double_rank, study_name=args.study,
                          overrides=args.overrides, progress=not args.quiet)
    print(table(result))
    return 0


def cmd_data_contracts(args) -> int:
    from .tasks.contracts import write_dataset

    if args.train < 1 or args.eval < 1:
        from .errors import ConfigError

        raise ConfigError(f"--train and --eval must be >= 1, got {args.train} and {args.eval}")
    paths = write_dataset(args.out, args.train, args.eval, seed=args.seed)
    print(json.dumps(paths, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tunelm",
        description="Hyperparameters for LLM fine-tuning (LoRA, QLoRA, full), without guesswork.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples("""
            tunelm train presets/demo.yaml                 # the embedded SmolLM2 on the contract task
            tunelm train presets/tiny.yaml --out runs/t1   # seconds, on a tiny random model
            tunelm validate my.yaml --set data.train=train.jsonl
            tunelm data contracts --train 800 --eval 60 --out data/contracts
        """),
    )
    parser.add_argument("--version", action="version", version=f"tunelm {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every step line")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings only, no progress bar")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = _command(
        sub, "train", "run one fine-tuning trial",
        """
            tunelm train presets/demo.yaml
            tunelm train presets/tiny.yaml --set train.learning_rate=3e-3 --out runs/lr3e-3
            tunelm train my.yaml --set data.train=data/train.jsonl --set model.name=Qwen/Qwen2.5-7B
            tunelm train presets/tiny.yaml --report-to mlflow,tensorboard   # MLFLOW_TRACKING_URI
        """,
    )
    _add_config_args(p)
    p.add_argument("--out", help="trial directory (default: runs/<config name>)")
    _add_report_to(p)
    p.set_defaults(func=cmd_train)

    p = _command(
        sub, "validate", "check a config without running it",
        """
            tunelm validate presets/llama3-8b-lora.yaml
            tunelm validate my.yaml --print      # show the resolved config with every field's help
        """,
    )
    _add_config_args(p)
    p.add_argument("--print", action="store_true", help="print the resolved config")
    p.set_defaults(func=cmd_validate)

    p = _command(
        sub, "recommend", "a starting config with the reason and source of every value",
        """
            tunelm recommend --model meta-llama/Llama-3.1-8B-Instruct --data train.jsonl --gpu-memory 80
            tunelm recommend --model Qwen/Qwen3-8B --examples 20000 --avg-tokens 600 --gpus 8
            tunelm recommend --model smollm2-135m --format yaml --out my.yaml && tunelm train my.yaml
            tunelm recommend --model ./my-model --data train.jsonl --alpha 64 --format json
        """,
    )
    p.add_argument("--model", required=True,
                   help="hub id (built-in table works offline), local directory, .gguf, smollm2-135m")
    p.add_argument("--data", help="training data (JSONL/CSV file or directory) to size the run from")
    p.add_argument("--examples", type=int, help="number of examples, when there is no --data yet")
    p.add_argument("--avg-tokens", type=float, help="average tokens per example, with --examples")
    p.add_argument("--method", default="lora", help="lora | qlora | full (default lora)")
    p.add_argument("--gpus", type=int, help="GPUs (0: CPU; default: the ones this machine has)")
    p.add_argument("--gpu-memory", type=float, help="GiB per GPU (default: detected)")
    p.add_argument("--task-type", default="instruction",
                   help="instruction | classification | code | style (default instruction)")
    p.add_argument("--alpha", type=float, help="your LoRA alpha; the rate is rescaled by 32/alpha")
    p.add_argument("--rank", type=int, help="your LoRA rank")
    p.add_argument("--rslora", action="store_true", help="rank-stabilised scaling alpha/sqrt(r)")
    p.add_argument("--batch", type=int, help="your effective batch (square-root rule on the rate)")
    p.add_argument("--measure", action="store_true",
                   help="measure throughput with a few real steps for the budget")
    p.add_argument("--format", default="text", choices=["text", "yaml", "json"])
    p.add_argument("--out", help="write to this file instead of stdout")
    p.set_defaults(func=cmd_recommend)

    p = _command(
        sub, "search", "a budgeted, resumable hyperparameter search",
        """
            tunelm search presets/tiny.yaml --strategy random --trials 6
            tunelm search my.yaml --strategy protocol --budget-hours 20 --out runs/contracts
            tunelm search runs/contracts              # continue a study with its stored config
            tunelm search my.yaml --storage postgresql://user:pw@host/db --study contracts
            tunelm search my.yaml --dry-run           # the space, the plan, the budget
            tunelm search my.yaml --workers 8 --trials 64   # one worker process per GPU
            tunelm search my.yaml --strategy pbt --set search.pbt_population=8
            tunelm search my.yaml --report-to wandb         # a W&B run per trial, grouped by study
        """,
    )
    _add_config_args(p)
    p.add_argument("--strategy", help="grid | random | tpe | protocol | pbt")
    p.add_argument("--trials", type=int, help="total trials of the study")
    p.add_argument("--budget-hours", type=float, help="total device-hours of the study")
    p.add_argument("--timeout", type=float, help="wall-clock minutes for this session")
    p.add_argument("--pruner", help="none | median | successive_halving | hyperband")
    p.add_argument("--storage", help="SQLAlchemy URL (default: SQLite in the study directory)")
    p.add_argument("--study", help="study name (default: the directory name)")
    p.add_argument("--out", help="study directory (default: runs/<study>)")
    p.add_argument("--workers", type=int,
                   help="local worker processes (one per GPU; on a CPU they share the cores)")
    p.add_argument("--isolate", action="store_true",
                   help="run each trial in a child process (memory fully returned after each)")
    _add_report_to(p)
    p.add_argument("--dry-run", action="store_true", help="print the space, plan and budget")
    p.set_defaults(func=cmd_search)

    p = _command(
        sub, "worker", "join a study from another process or machine",
        """
            tunelm worker --storage postgresql://user:pw@host/db --study contracts
        """,
    )
    p.add_argument("--storage", required=True, help="the study's SQLAlchemy URL")
    p.add_argument("--study", required=True, help="the study name")
    p.add_argument("--out", help="where this worker writes trial directories")
    p.set_defaults(func=cmd_worker)

    p = _command(
        sub, "demo", "the whole loop on the embedded default: recommend, search, compare, report",
        """
            tunelm demo                       # about 12 minutes on a 2-core CPU; runs/demo
            tunelm demo --out runs/demo2 --steps 60
        """,
    )
    p.add_argument("--out", default="runs/demo", help="study directory (default runs/demo)")
    p.add_argument("--steps", type=int, default=40,
                   help="steps of a full run, the same cap for every run (default 40)")
    p.add_argument("--train", type=int, default=200, help="training examples (default 200)")
    p.add_argument("--eval", type=int, default=40, help="held-out examples (default 40)")
    p.add_argument("--model", default="smollm2-135m", help=argparse.SUPPRESS)  # tests: tiny
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("best", help="the best config of a study, as YAML for tunelm train")
    p.add_argument("study", help="study directory, or a storage URL with --name")
    p.add_argument("--name", help="study name (with a storage URL)")
    p.set_defaults(func=cmd_best)

    p = _command(
        sub, "export", "the best config of a study (or a run's) for TRL, Transformers, Axolotl "
        "or LLaMA-Factory",
        """
            tunelm export runs/contracts --to axolotl               # ./axolotl.yaml
            tunelm export runs/contracts --to trl --out job/train.py  # job/train.py + job/train.json
            tunelm export runs/t1 --to transformers --out exports/  # a run directory
            tunelm export postgresql://user:pw@host/db --study contracts --to llama-factory
        """,
    )
    p.add_argument("source", help="study directory, run (trial) directory, or storage URL "
                   "with --study")
    p.add_argument("--to", required=True, metavar="FORMAT",
                   help="trl | transformers | axolotl | llama-factory")
    p.add_argument("--out", help="the main file to write (companions go beside it), or a "
                   "directory (default: the format's file name here)")
    p.add_argument("--study", help="study name (with a storage URL, or to pick one study)")
    p.set_defaults(func=cmd_export)

    p = _command(
        sub, "report", "a self-contained HTML report of a study, and its plots as PNGs",
        """
            tunelm report runs/contracts                  # runs/contracts/report.html, plots/*.png
            tunelm report runs/contracts --out ~/contracts.html
            tunelm report runs/contracts --storage postgresql://user:pw@host/db --study contracts
        """,
    )
    p.add_argument("study_dir", metavar="STUDY", help="study directory (where tunelm search wrote it)")
    p.add_argument("--study", help="study name (default: the directory name)")
    p.add_argument("--storage", help="SQLAlchemy URL (default: SQLite in the study directory)")
    p.add_argument("--out", help="HTML file to write (default: STUDY/report.html)")
    p.set_defaults(func=cmd_report)

    p = _command(
        sub, "diagnose", "verdict and findings for a run: tunelm's, or any Trainer's trainer_state.json",
        """
            tunelm diagnose runs/tiny                      # a tunelm trial directory
            tunelm diagnose runs/contracts/trials/0003 --format json
            tunelm diagnose outputs/checkpoint-500         # a Trainer checkpoint (TRL, Axolotl, ...)
            tunelm diagnose outputs/                       # its latest checkpoint-N
            tunelm diagnose outputs/trainer_state.json
        """,
    )
    p.add_argument("path", metavar="PATH",
                   help="trial directory, Trainer output or checkpoint directory, "
                        "trainer_state.json or metrics.jsonl")
    p.add_argument("--format", default="text", choices=["text", "json"])
    p.set_defaults(func=cmd_diagnose)

    p = _command(
        sub, "lr-find", "learning-rate range test: a plot and a suggested rate",
        """
            tunelm lr-find presets/demo.yaml                # runs/demo-lr-find/lr_find.{json,png}
            tunelm lr-find my.yaml --min-lr 1e-6 --max-lr 1e-1 --steps 60 --out runs/my-lr
            tunelm lr-find my.yaml --set model.method=full --set train.batch_size=8
        """,
    )
    _add_config_args(p)
    p.add_argument("--min-lr", type=float, default=1e-7, help="first rate (default 1e-7)")
    p.add_argument("--max-lr", type=float, default=1.0, help="last rate (default 1)")
    p.add_argument("--steps", type=int, default=100,
                   help="optimizer steps from --min-lr to --max-lr (default 100, at least 10)")
    p.add_argument("--out", help="directory (default: runs/<config name>-lr-find)")
    p.set_defaults(func=cmd_lr_find)

    p = _command(
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
    p.add_argument("--metric", help="task metric: auto | json | exact | none (default: the run's)")
    p.add_argument("--max-examples", type=int,
                   help="generate for at most this many examples (default: all)")
    p.add_argument("--study", help="study name (with a storage URL)")
    p.add_argument("--out", help="directory (default: RUN/eval-<data file name>)")
    p.set_defaults(func=cmd_evaluate)

    p = _command(
        sub, "transfer", "verify the best configs of a proxy-model study on a target model",
        """
            tunelm transfer --from runs/proxy --to-model meta-llama/Llama-3.1-8B --top 3
            tunelm transfer --from runs/demo --to-model smollm2-135m --set model.method=full
            tunelm transfer --from runs/tiny --to-model tiny:hidden=128,layers=4 --fraction 0.5 \\
                --double-rank --out runs/tiny-big
            tunelm transfer --from postgresql://user:pw@host/db --study proxy --to-model ./my-model
        """,
    )
    p.add_argument("--from", dest="source", required=True, metavar="STUDY",
                   help="the proxy study: its directory, or a storage URL with --study")
    p.add_argument("--to-model", required=True, metavar="MODEL",
                   help="target model: hub id, local directory, .gguf, smollm2-135m, tiny:...")
    p.add_argument("--top", type=int, default=3,
                   help="transfer the K best finished configs of the proxy study (default 3)")
    p.add_argument("--fraction", type=float, default=0.2,
                   help="share of the planned steps each target run takes, in (0, 1] "
                        "(default 0.2)")
    p.add_argument("--double-rank", action="store_true", help="double the LoRA rank")
    p.add_argument("--study", help="the proxy study's name (with a storage URL)")
    p.add_argument("--out", help="the new study's directory (default: <STUDY>-to-<model>)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field of the target config, e.g. --set model.method=full "
                        "or --set data.train=big.jsonl (repeatable)")
    p.set_defaults(func=cmd_transfer)

    p = sub.add_parser("data", help="built-in datasets")
    data_sub = p.add_subparsers(dest="dataset", metavar="DATASET", parser_class=_Parser, required=True)
    q = _command(
        data_sub, "contracts", "write the synthetic contract-extraction task as JSONL",
        "tunelm data contracts --train 800 --eval 60 --seed 0 --out data/contracts",
    )
    q.add_argument("--train", type=int, default=800, help="training examples")
    q.add_argument("--eval", type=int, default=60, help="eval examples")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--out", required=True, help="directory for train.jsonl and eval.jsonl")
    q.set_defaults(func=cmd_data_contracts)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .logs import setup_console

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    setup_console(verbose=args.verbose, quiet=args.quiet)
    _quiet_libraries()
    try:
        return args.func(args)
    except TunelmError as exc:
        if args.debug:
            raise
        print(f"tunelm: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("tunelm: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an unexpected failure of a run: exit 1, traceback with --debug
        if args.debug:
            raise
        print(f"tunelm: run failed: {type(exc).__name__}: {exc} (rerun with --debug for the "
              "traceback)", file=sys.stderr)
        return EXIT_FAILED


def _quiet_libraries() -> None:
    import os
    import warnings

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
