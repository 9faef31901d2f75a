"""`tunelm worker`: join a study from another process or machine (`search.run_search(worker=True)`)."""

from __future__ import annotations

from pathlib import Path

from ._common import command


def add(sub) -> None:
    p = command(
        sub, "worker", "join a study from another process or machine",
        """
            tunelm worker --storage postgresql://user:pw@host/db --study contracts
        """,
    )
    p.add_argument("--storage", required=True, help="the study's SQLAlchemy URL")
    p.add_argument("--study", required=True, help="the study name")
    p.add_argument("--out", help="where this worker writes trial directories")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..search import describe, run_search
    from ..search.interrupt import handled

    out = Path(args.out) if args.out else Path("runs") / args.study
    check_ranks(args.storage, args.study)
    with handled():  # Ctrl-C: the running trial marked, exit 130
        result = run_search(None, out, storage=args.storage, study_name=args.study,
                            progress=not args.quiet, live=True, worker=True)
    print(describe(result))
    return 0


def check_ranks(storage: str, study: str) -> None:
    """The study's trials run on train.devices ranks: a worker on a machine (a Slurm task, a
    pod) given fewer devices exits 2 before it takes a trial, naming both."""
    from ..runner.devices import check_devices, visible
    from ..search.opener import load_study

    _, cfg = load_study(storage, storage, study)
    check_devices(cfg.train.devices, visible())
