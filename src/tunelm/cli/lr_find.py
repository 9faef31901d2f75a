"""`tunelm lr-find CONFIG`: the learning-rate range test (`lr_find.run_lr_find`)."""

from __future__ import annotations

from pathlib import Path

from ._common import add_config_args, command


def add(sub) -> None:
    p = command(
        sub, "lr-find", "learning-rate range test: a plot and a suggested rate",
        """
            tunelm lr-find presets/demo.yaml                # runs/demo-lr-find/lr_find.{json,png}
            tunelm lr-find my.yaml --min-lr 1e-6 --max-lr 1e-1 --steps 60 --out runs/my-lr
            tunelm lr-find my.yaml --set model.method=full --set train.batch_size=8
        """,
    )
    add_config_args(p)
    p.add_argument("--min-lr", type=float, default=1e-7, help="first rate (default 1e-7)")
    p.add_argument("--max-lr", type=float, default=1.0, help="last rate (default 1)")
    p.add_argument("--steps", type=int, default=100,
                   help="optimizer steps from --min-lr to --max-lr (default 100, at least 10)")
    p.add_argument("--out", help="directory (default: runs/<config name>-lr-find)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..config import load_config
    from ..lr_find import check_range, render_text, run_lr_find

    check_range(args.min_lr, args.max_lr, args.steps)  # before loading anything
    cfg = load_config(args.config, args.overrides)
    out = Path(args.out) if args.out else Path("runs") / f"{Path(args.config).stem}-lr-find"
    record = run_lr_find(cfg, out, min_lr=args.min_lr, max_lr=args.max_lr, steps=args.steps,
                         progress=not args.quiet)
    print(render_text(record, out))
    return 0
