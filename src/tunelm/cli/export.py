"""`tunelm export STUDY --to T`: the best config for another trainer (`export.export`)."""

from __future__ import annotations

from ._common import command


def add(sub) -> None:
    p = command(
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
    p.set_defaults(func=run)


def run(args) -> int:
    from ..export import export

    for path in export(args.source, args.to, args.out, study_name=args.study):
        print(path)
    return 0
