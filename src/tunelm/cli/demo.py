"""`tunelm demo`: the whole loop on the embedded default (`demo.run_demo`)."""

from __future__ import annotations

import argparse

from ._common import command


def add(sub) -> None:
    p = command(
        sub, "demo", "the whole loop on the embedded default: recommend, search, compare, report",
        """
            tunelm demo                       # recommend, a 3-trial search, compare; runs/demo
            tunelm demo --out runs/demo2 --steps 40 --eval 40   # longer runs, sized as before
        """,
    )
    p.add_argument("--out", default="runs/demo", help="study directory (default runs/demo)")
    p.add_argument("--steps", type=int, default=8,
                   help="steps of a full run, the same cap for every run (default 8)")
    p.add_argument("--train", type=int, default=200, help="training examples (default 200)")
    p.add_argument("--eval", type=int, default=24, help="held-out examples (default 24)")
    p.add_argument("--model", default="smollm2-135m", help=argparse.SUPPRESS)  # tests: tiny
    p.set_defaults(func=run)


def run(args) -> int:
    from ..demo import run_demo, table, tried_table

    result = run_demo(args.out, model=args.model, train_size=args.train, eval_size=args.eval,
                      steps=args.steps)
    print(f"\nthe comparison on {args.eval} held-out contracts (exact match of the parsed JSON; "
          "eval loss on the completion tokens);")
    print(f"every run capped at {result.steps} steps, where the recommended run is "
          f"{result.recommended_steps}: the recommended rate is set for the whole run, and a "
          "run this short can favour a higher one")
    print(table(result.rows))
    print("\nwhat the search tried (eval loss: the best each trial reached before it ended):")
    print(tried_table(result.tried))
    print(f"\nstudy directory   {result.out}")
    if result.report:
        print(f"report            {result.report}")
    print(f"took              {result.seconds / 60:.1f} minutes")
    return 0
