"""The `tunelm` command line: thin commands, one module each, each calling one library function.

Exit codes: 0 success, 2 bad input (config, data, arguments), 1 a run that failed, 75 a run
SIGTERM stopped after saving a checkpoint (run the same command again to resume).

A command module has `add(sub)`, which adds its parser (arguments, help, examples) and sets
`run(args) -> int` as its function; `COMMANDS` lists them in the order `--help` shows them.
"""

from __future__ import annotations

import argparse
import logging
import sys

from .. import __version__
from ..errors import EXIT_BAD_INPUT, EXIT_FAILED, TunelmError
from . import (
    best,
    data,
    demo,
    diagnose,
    evaluate,
    export,
    lr_find,
    recommend,
    report,
    search,
    train,
    transfer,
    validate,
    worker,
)
from ._common import Parser, examples

log = logging.getLogger("tunelm")
COMMANDS = (train, validate, recommend, search, worker, demo, best, export, report, diagnose,
            lr_find, evaluate, transfer, data)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="tunelm",
        description="Hyperparameters for LLM fine-tuning (LoRA, QLoRA, full), without guesswork.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=examples("""
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
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for module in COMMANDS:
        module.add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ..environment import configure_process
    from ..logs import setup_console

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    setup_console(verbose=args.verbose, quiet=args.quiet)
    configure_process()
    try:
        return args.func(args)
    except TunelmError as exc:
        if args.debug:
            raise
        print(f"tunelm: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # search and worker say what became of the trial
        print(f"tunelm: {exc or 'interrupted'}", file=sys.stderr)
        return 130
    except Exception as exc:  # an unexpected failure of a run: exit 1, traceback with --debug
        if args.debug:
            raise
        print(f"tunelm: run failed: {type(exc).__name__}: {exc} (rerun with --debug for the "
              "traceback)", file=sys.stderr)
        return EXIT_FAILED


__all__ = ["COMMANDS", "build_parser", "main"]
