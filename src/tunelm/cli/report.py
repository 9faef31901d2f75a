"""`tunelm report STUDY`: the HTML report and its plots (`report.write_report`)."""

from __future__ import annotations

from ._common import command


def add(sub) -> None:
    p = command(
        sub, "report", "a self-contained HTML report of a study, and its plots as PNGs",
        """
            tunelm report runs/contracts                  # runs/contracts/report.html, plots/*.png
            tunelm report runs/contracts --out ~/contracts.html
            tunelm report runs/contracts --storage postgresql://user:pw@host/db --study contracts
        """,
    )
    p.add_argument("study_dir", metavar="STUDY", help="study directory (where tunelm search wrote it)")
    p.add_argument("--study", help="study name (default: the directory name)")
    p.add_argument("--storage", help="SQLAlchemy URL (default: SQLite in the study directory)")
    p.add_argument("--out", help="HTML file to write (default: STUDY/report.html)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..report import write_report
    from ..search.location import is_storage_url

    study_dir, storage = args.study_dir, args.storage
    if study_dir is not None and is_storage_url(study_dir):  # a URL where a directory goes
        study_dir, storage = None, study_dir
    path = write_report(study_dir, storage=storage, study_name=args.study, out=args.out)
    print(f"report written to {path} (plots in {path.parent / 'plots'})")
    return 0
