"""`tunelm data contracts`: write a built-in dataset (`tasks.contracts.write_dataset`)."""

from __future__ import annotations

import json

from ._common import Parser, command


def add(sub) -> None:
    p = sub.add_parser("data", help="built-in datasets")
    data_sub = p.add_subparsers(dest="dataset", metavar="DATASET", parser_class=Parser, required=True)
    q = command(
        data_sub, "contracts", "write the synthetic contract-extraction task as JSONL",
        "tunelm data contracts --train 800 --eval 60 --seed 0 --out data/contracts",
    )
    q.add_argument("--train", type=int, default=800, help="training examples")
    q.add_argument("--eval", type=int, default=60, help="eval examples")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--out", required=True, help="directory for train.jsonl and eval.jsonl")
    q.set_defaults(func=run)


def run(args) -> int:
    from ..tasks.contracts import write_dataset

    if args.train < 1 or args.eval < 1:
        from ..errors import ConfigError

        raise ConfigError(f"--train and --eval must be >= 1, got {args.train} and {args.eval}")
    paths = write_dataset(args.out, args.train, args.eval, seed=args.seed)
    print(json.dumps(paths, indent=2))
    return 0
