"""`tunelm search CONFIG|DIR`: a budgeted, resumable study (`search.run_search`); `--dry-run` prints
the space, the strategy's plan and the cost estimate."""

from __future__ import annotations

from pathlib import Path

from ..config import PRUNER_NAMES, STRATEGIES
from ._common import (
    add_config_args,
    add_devices,
    add_report_to,
    command,
    devices,
    one_of,
    report_to,
)


def add(sub) -> None:
    p = command(
        sub, "search", "a budgeted, resumable hyperparameter search",
        """
            tunelm search presets/tiny.yaml --strategy random --trials 6
            tunelm search my.yaml --strategy protocol --budget-hours 20 --out runs/contracts
            tunelm search runs/contracts              # continue a study with its stored config
            tunelm search my.yaml --storage postgresql://user:pw@host/db --study contracts
            tunelm search my.yaml --dry-run           # the space, the plan, the budget
            tunelm search my.yaml --workers 8 --trials 64   # one worker process per GPU
            tunelm search my.yaml --workers 4 --devices-per-trial 2   # 4 workers x 2 GPUs each
            tunelm search my.yaml --storage postgresql://u:pw@db/tunelm --study s1 --create
            tunelm search my.yaml --strategy pbt --set search.pbt_population=8
            tunelm search my.yaml --report-to wandb         # a W&B run per trial, grouped by study
        """,
    )
    add_config_args(p, directory_ok=True)
    p.add_argument("--strategy", type=one_of("--strategy", STRATEGIES), metavar="STRATEGY",
                   help=" | ".join(STRATEGIES))
    p.add_argument("--trials", type=int, help="total trials of the study")
    p.add_argument("--budget-hours", type=float, help="total device-hours of the study")
    p.add_argument("--timeout", type=float, help="wall-clock minutes for this session")
    p.add_argument("--pruner", type=one_of("--pruner", PRUNER_NAMES), metavar="PRUNER",
                   help=" | ".join(PRUNER_NAMES))
    p.add_argument("--storage", help="SQLAlchemy URL (default: SQLite in the study directory)")
    p.add_argument("--study", help="study name (default: the directory name)")
    p.add_argument("--out", help="study directory (default: runs/<study>)")
    p.add_argument("--workers", type=int,
                   help="local worker processes, each on its own slice of CUDA_VISIBLE_DEVICES "
                        "(on a CPU they share the cores)")
    p.add_argument("--devices-per-trial", type=int, metavar="K",
                   help="devices of each worker's slice; its trials run on them as K ranks "
                        "(search.devices_per_trial, which sets train.devices)")
    p.add_argument("--isolate", action="store_true",
                   help="run each trial in a child process (memory fully returned after each)")
    add_report_to(p)
    add_devices(p)
    p.add_argument("--dry-run", action="store_true", help="print the space, plan and budget")
    p.add_argument("--create", action="store_true",
                   help="create the study in its storage and run no trial: for tunelm worker "
                        "processes started elsewhere (a Slurm array, a Kubernetes Job)")
    p.set_defaults(func=run)


def _search_config(args):
    """(config or None, study directory). A directory continues its study with the stored
    config; budget flags (--trials, --budget-hours, ...) still apply to it."""
    from ..config import apply_overrides, from_dict, load_config, parse_overrides

    target = Path(args.config)
    flags = [f"search.{k}={v}" for k, v in (
        ("strategy", args.strategy), ("trials", args.trials), ("budget_hours", args.budget_hours),
        ("timeout_minutes", args.timeout), ("pruner", args.pruner), ("workers", args.workers),
        ("devices_per_trial", args.devices_per_trial),
        ("isolate", True if args.isolate else None)) if v is not None]
    flags += report_to(args) + devices(args)  # workers follow the study's stored config
    if target.is_dir():
        if args.overrides or args.strategy:
            from ..errors import ConfigError

            raise ConfigError("a study directory keeps its config and strategy: --set and "
                              "--strategy apply to a new study (give a CONFIG file)")
        if not flags:
            return None, target
        from ..search.opener import load_study

        _, stored = load_study(target, args.storage, args.study)
        return from_dict(apply_overrides(stored.to_dict(), parse_overrides(flags))), target
    cfg = load_config(target, args.overrides + flags)
    return cfg, Path(args.out) if args.out else Path("runs") / (args.study or target.stem)


def run(args) -> int:
    from ..errors import ConfigError
    from ..search import describe, run_search

    cfg, out = _search_config(args)
    if args.dry_run:
        print(dry_run(cfg, out))
        return 0
    if args.create:  # the trials run elsewhere: this machine's devices do not matter
        from ..search import create_for_workers

        if cfg is None:
            raise ConfigError("--create makes a new study: give a CONFIG file")
        print(create_for_workers(cfg, out, args.storage, args.study))
        return 0
    if cfg is not None:  # more ranks per trial than this machine has: exit 2, nothing started
        from ..runner.devices import check_devices, visible

        check_devices(cfg.train.devices, visible())
    from ..search.interrupt import handled

    with handled():  # Ctrl-C: the running trial marked, exit 130, the same command continues
        result = run_search(cfg, out, storage=args.storage, study_name=args.study,
                            progress=not args.quiet, live=True)
    print(describe(result))
    return 0


def dry_run(cfg, out) -> str:
    """The space, the strategy's plan and the cost estimate of a study, without running it."""
    from ..errors import DataError, ModelError
    from ..search.estimate import describe_cost, estimate_cost
    from ..search.goal import direction_of
    from ..search.opener import load_study
    from ..search.space import dims_of
    from ..search.strategies import strategy_named

    if cfg is None:
        _, cfg = load_study(out)
    dims = dims_of(cfg)
    s = cfg.search
    lines = [f"strategy {s.strategy}, pruner {s.pruner}, objective {s.objective} "
             f"({direction_of(s)}d); budget: "
             f"trials {s.trials}, device-hours {s.budget_hours}, minutes {s.timeout_minutes}"]
    for d in dims:
        what = (f"one of {list(d.choices)}" if d.kind == "categorical" else
                f"{'log-uniform' if d.log else 'uniform'} {d.low:g} .. {d.high:g}")
        lines.append(f"  {d.name:<28} {what}")
    plan = strategy_named(s.strategy).plan(cfg, dims)
    if plan:
        lines.append(plan)
    if s.workers > 1:
        lines.append(_workers_line(cfg))
    try:
        lines.append(describe_cost(estimate_cost(cfg, dims)))
    except (DataError, ModelError) as exc:  # the plan stands; the cost needs the data and model
        lines.append(f"cost: not estimated: {exc}")
    return "\n".join(lines)


def _workers_line(cfg) -> str:
    """Where each local worker would run: its slice of CUDA_VISIBLE_DEVICES, or the reason
    there is none."""
    from ..errors import ConfigError
    from ..search.workers import worker_slices

    try:
        parts = worker_slices(cfg)
    except ConfigError as exc:
        return f"workers: {exc}"
    return "workers: " + "; ".join(f"{p.index} on {p.describe()}" for p in parts)
