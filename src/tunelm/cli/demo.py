"""`tunelm demo`: the whole loop on the embedded default (`demo.run_demo`)."""

from __future__ import annotations

import argparse

from ._common import command


def add(sub) -> None:
    p = command(
        sub, "demo", "the whole loop on the embedded default: recommend, search, compare, report",
        """
            tunelm demo                       # recommend, a 3-trial search, compare; runs/demo
            tunelm demo --out runs/demo2 --steps 60
        """,
    )
    p.add_argument("--out", default="runs/demo", help="study directory (default runs/demo)")
    p.add_argument("--steps", type=int, default=40,
                   help="steps of a full run, the same cap for every run (default 40)")
    p.add_argument("--train", type=int, default=200, help="training examples (default 200)")
    p.add_argument("--eval", type=int, default=40, help="held-out examples (default 40)")
    p.add_argument("--model", default="smollm2-135m", help=argparse.SUPPRESS)  # tests: tiny
    p.set_defaults(func=run)


def run(args) -> int:
    from ..demo import run_demo, table, tried_table

    result = run_demo(args.out, model=args.model, train_size=args.train, eval_size=args.eval,
                      steps=args.steps)
    print(f"\nthe comparison on {args.eval} held-out contracts (exact match of the parsed JSON; "
          "eval loss on the completion tokens):")
    print(table(result.rows))
    print("\nwhat the search tried (eval loss: the best each trial reached before it ended):")
    print(tried_table(result.tried))
    print(f"\nstudy directory   {result.out}")
    if result.report:
        print(f"report            {result.report}")
    print(f"took              {result.seconds / 60:.1f} minutes")
    return 0
