"""`tunelm best STUDY`: the best config of a study as YAML (`search.best_config`)."""

from __future__ import annotations


def add(sub) -> None:
    p = sub.add_parser("best", help="the best config of a study, as YAML for tunelm train")
    p.add_argument("study", help="study directory, or a storage URL with --name")
    p.add_argument("--name", help="study name (with a storage URL)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..search import best_config

    print(best_config(args.study, args.name).to_yaml(), end="")
    return 0
