"""The `tunelm` command line: thin commands, each calling one library function.

Exit codes: 0 success, 2 bad input (config, data, arguments), 1 a run that failed.
"""

from __future__ import annotations

import argparse
import json
import logging
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


def _add_config_args(p):
    p.add_argument("config", help="YAML config (see presets/)")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a field, e.g. --set train.learning_rate=3e-4 (repeatable)",
    )


def cmd_train(args) -> int:
    from .config import load_config
    from .runner import run_trial

    cfg = load_config(args.config, args.overrides)
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

    p = sub.add_parser(
        "train", help="run one fine-tuning trial",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples("""
            tunelm train presets/demo.yaml
            tunelm train presets/tiny.yaml --set train.learning_rate=3e-3 --out runs/lr3e-3
            tunelm train my.yaml --set data.train=data/train.jsonl --set model.name=Qwen/Qwen2.5-7B
        """),
    )
    _add_config_args(p)
    p.add_argument("--out", help="trial directory (default: runs/<config name>)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "validate", help="check a config without running it",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples("""
            tunelm validate presets/llama3-8b-lora.yaml
            tunelm validate my.yaml --print      # show the resolved config with every field's help
        """),
    )
    _add_config_args(p)
    p.add_argument("--print", action="store_true", help="print the resolved config")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("data", help="built-in datasets")
    data_sub = p.add_subparsers(dest="dataset", metavar="DATASET", parser_class=_Parser, required=True)
    q = data_sub.add_parser(
        "contracts", help="write the synthetic contract-extraction task as JSONL",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples("tunelm data contracts --train 800 --eval 60 --seed 0 --out data/contracts"),
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
