"""What every command module shares: the parser that exits 2 with a hint, subcommands whose
--help ends with examples, the config arguments, and small formatting helpers."""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

from ..config_choices import SHARDINGS
from ..errors import EXIT_BAD_INPUT


class Parser(argparse.ArgumentParser):
    """argparse exits with 2 on bad arguments already; keep its message, add a hint."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\nRun '{self.prog} --help' for examples.\n")


def examples(text: str) -> str:
    return "examples:\n" + textwrap.indent(textwrap.dedent(text).strip(), "  ")


def command(parent, name: str, help: str, examples_text: str) -> argparse.ArgumentParser:
    """A subcommand whose --help ends with its examples."""
    return parent.add_parser(name, help=help, epilog=examples(examples_text),
                             formatter_class=argparse.RawDescriptionHelpFormatter)


def config_file(directory_ok: bool = False):
    """An argparse `type` for a config path: one that exists must be a regular UTF-8 text file
    (a named pipe would block the read forever), or a directory where `directory_ok` (a study
    directory). A missing one is left to the loader, which says so."""

    def check(value: str) -> str:
        p = Path(value).expanduser()
        if not p.exists() or (directory_ok and p.is_dir()):
            return value
        if not p.is_file():
            what = "a directory" if p.is_dir() else "not a regular file (a pipe, device or socket)"
            raise argparse.ArgumentTypeError(f"config {value} is {what}; give a YAML file"
                                             + (" or a study directory" if directory_ok else ""))
        try:
            p.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise argparse.ArgumentTypeError(f"config {value} is not UTF-8 text (byte "
                                             f"{exc.start}); give a YAML file") from None
        return value

    check.__name__ = "config"
    return check


def add_config_args(p, directory_ok: bool = False):
    p.add_argument("config", type=config_file(directory_ok),
                   help="YAML config (see presets/)" + (", or a study directory to continue"
                                                        if directory_ok else ""))
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a field, e.g. --set train.learning_rate=3e-4 (repeatable)",
    )


def report_to(args) -> list[str]:
    """--report-to as the override of train.report_to (validated with the config)."""
    return [f"train.report_to={args.report_to}"] if args.report_to is not None else []


def add_report_to(p):
    p.add_argument("--report-to", metavar="TRACKERS",
                   help="log every run to experiment trackers: none, or any of wandb, mlflow, "
                        "tensorboard, comma-separated (train.report_to)")


def add_devices(p):
    p.add_argument("--devices", type=int, metavar="N",
                   help="ranks one trial runs on: CUDA devices, or gloo processes on a CPU "
                        "(train.devices; effective batch = batch_size x grad_accum x N)")
    p.add_argument("--sharding", type=one_of("--sharding", SHARDINGS), metavar="{none,fsdp}",
                   help="fsdp: the ranks share out weights, gradients and optimizer state "
                        "(FSDP2; needs --devices 2 or more); none: each rank holds the whole "
                        "model (train.sharding)")


def devices(args) -> list[str]:
    """--devices and --sharding as overrides of train.devices and train.sharding (validated
    with the config)."""
    flags = [f"train.devices={args.devices}"] if args.devices is not None else []
    return flags + ([f"train.sharding={args.sharding}"] if args.sharding is not None else [])


def one_of(flag: str, options: tuple[str, ...]):
    """An argparse `type` that accepts one of `options` (the config's list of them) and says
    which otherwise: `--metric must be one of auto, json, exact, none, got 'bleu'` (exit 2)."""

    def check(value: str) -> str:
        if value not in options:
            raise argparse.ArgumentTypeError(f"{flag} must be one of {', '.join(options)}, "
                                             f"got {value!r}")
        return value

    check.__name__ = flag.lstrip("-")  # argparse names the type in some messages
    return check


def fmt(x, spec=".4f"):
    return "n/a" if x is None else format(x, spec)
