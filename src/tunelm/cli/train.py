"""`tunelm train CONFIG`: one fine-tuning run (`runner.run_trial`)."""

from __future__ import annotations

from pathlib import Path

from ._common import add_config_args, add_devices, add_report_to, command, devices, fmt, report_to


def add(sub) -> None:
    p = command(
        sub, "train", "run one fine-tuning trial",
        """
            tunelm train presets/demo.yaml
            tunelm train presets/tiny.yaml --set train.learning_rate=3e-3 --out runs/lr3e-3
            tunelm train my.yaml --set data.train=data/train.jsonl --set model.name=Qwen/Qwen2.5-7B
            tunelm train presets/tiny.yaml --report-to mlflow,tensorboard   # MLFLOW_TRACKING_URI
            tunelm train my.yaml --devices 8           # one trial on 8 data-parallel ranks
            tunelm train my.yaml --dry-run             # the step plan: effective batch, steps
            tunelm train my.yaml --set train.checkpoint_minutes=10 --out runs/a
                # SIGTERM saves a checkpoint and exits 75; the same command resumes it
        """,
    )
    add_config_args(p)
    p.add_argument("--out", help="trial directory (default: runs/<config name>)")
    add_report_to(p)
    add_devices(p)
    p.add_argument("--dry-run", action="store_true",
                   help="print the step plan (effective batch, steps) and stop")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..config import load_config
    from ..runner import run_trial

    cfg = load_config(args.config, args.overrides + report_to(args) + devices(args))
    if args.dry_run:
        from ..runner.preview import describe_plan, preview_plan

        print(describe_plan(preview_plan(cfg)))
        return 0
    out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
    from ..search.interrupt import handled

    with handled(f"the run in {out} stopped (its result.json says so once training had begun); "
                 "rerun the same command to train it again"):  # a second Ctrl-C quits at once
        result = run_trial(cfg, out, progress=not args.quiet)
    _print_result(result, out)
    return 0


def _print_result(result: dict, out: Path) -> None:
    task = result.get("task_metrics") or {}
    base = result.get("baseline_task_metrics") or {}
    lines = [
        f"trial directory   {out}",
        f"stop reason       {result['stop_reason']}",
        f"best eval loss    {fmt(result['best_eval_loss'])} at step {result['best_step']}",
        f"final eval loss   {fmt(result['final_eval_loss'])} at step {result['final_step']}",
    ]
    lines += _score_lines(task, base)
    lines.append(
        f"throughput        {fmt(result['tokens_per_s'], '.0f')} tokens/s over "
        f"{result['train_seconds']:.0f} s of training ({result['wall_seconds']:.0f} s in all)"
    )
    print("\n".join(lines))


def _score_lines(task: dict, base: dict) -> list[str]:
    """One line per score of the task metric (shares as percentages), the base model's below."""
    from ..tasks.metrics import SHARES

    def shown(v, k):
        return f"{v:.1%}" if k in SHARES else f"{v:.4f}"

    lines = []
    for k, v in task.items():
        if k == "n" or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        note = f" (best checkpoint, n={task.get('n')})" if not lines else ""
        lines.append(f"{k.replace('_', ' '):<17} {shown(v, k)}{note}")
        if isinstance(base.get(k), (int, float)):
            lines.append(f"  base model      {shown(base[k], k)}")
    return lines
