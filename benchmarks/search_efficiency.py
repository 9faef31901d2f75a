"""Search efficiency: strategies replayed on recorded grids, regret against compute spent.

Two grids are recorded once on the embedded SmolLM2 (this CPU), each 24 configurations around
the config `tunelm recommend` gives for the task's training file: 6 learning rates (recommended
x 10^(k/2), k = -3..2) x LoRA rank {r, 2r} x warmup ratio {0.05, 0.1}:

- docstrings (natural text): relative regret in eval loss is meaningful;
- contracts (the demo task): regret in exact-match points (its eval loss approaches zero).

Every learning curve (eval loss at every evaluation, train loss and grad norm at every step),
the best eval loss, exact match of the best checkpoint (contracts) and the seconds each run took
are kept in benchmarks/data/grid-<task>.json. Then each strategy is replayed 50 times with
different seeds against the recordings (`_replay.py`): `protocol` (ours, staged), `tpe` as
`tunelm search` runs it by default (recommended config first, TPE, Hyperband pruning),
`tpe-nopruning`, `tpe+sh` (successive halving), and the baselines `random`, `grid` and
`default-tpe` (Optuna's TPESampler as it comes). Output: one table and one plot of regret
against compute spent as a fraction of the grid's compute.

The CPU cap, the same for every configuration, chosen so that both grids record in about 75
minutes on a 2-core CPU (one config measured first: 20 steps took 116 s on contracts with
generation on 20 examples, 91 s on docstrings): 18 optimizer steps of batch 4 (72 examples),
eval loss every 3 steps (6 evaluations; the first at 17% of the steps, inside a 20% probe) on 16
held-out examples, exact match by greedy generation on 20 held-out examples (contracts),
max_length at most 256. (Recorded 2026-11-27 in 87.5 minutes, not 75: the machine was shared
with other model runs for part of it. A trial's cost in the replay is therefore the CPU seconds
of the recording process, 89-103 s per configuration, rather than its wall seconds, 60-210 s.)

    .venv/bin/python benchmarks/search_efficiency.py                 # record (resumes), replay
    .venv/bin/python benchmarks/search_efficiency.py --replay-only   # replay only, seconds
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(HERE))
DATA = HERE / "data"
TASKS = ("docstrings", "contracts")
CAP = {"steps": 18, "eval_steps": 3, "max_eval_examples": 16, "em_examples": 20,
       "max_length": 256}
log = logging.getLogger("tunelm.bench")


def grid_path(task: str) -> Path:
    return DATA / f"grid-{task}.json"


def record_grids(tasks, limit: int | None = None) -> None:
    """Record (or finish recording) the grids of `tasks`; the base model is loaded once."""
    import warnings

    from _grid import record
    from transformers.utils import logging as hf_logging

    warnings.filterwarnings("ignore")
    hf_logging.set_verbosity_error()
    logging.getLogger("tunelm").setLevel(logging.WARNING)
    holder: dict = {}
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for task in tasks:
            record(task, grid_path(task), Path(tmp), CAP, holder, limit,
                   echo=lambda s: print(f"[{(time.time() - started) / 60:5.1f} min] {s}",
                                        flush=True))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replay-only", action="store_true",
                        help="replay the recorded grids; train nothing")
    parser.add_argument("--record-only", action="store_true", help="record; replay nothing")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--limit", type=int, default=None,
                        help="record at most this many more configurations per task")
    parser.add_argument("--seeds", type=int, default=50)
    args = parser.parse_args(argv)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        print(f"--tasks must name some of {', '.join(TASKS)}, got {args.tasks!r}",
              file=sys.stderr)
        return 2
    if args.seeds < 1:
        print(f"--seeds must be >= 1, got {args.seeds}", file=sys.stderr)
        return 2
    if not args.replay_only:
        record_grids(tasks, args.limit)
    if args.record_only:
        return 0
    from _report import replay_main

    return replay_main(tasks, args.seeds, [grid_path(t) for t in tasks], DATA)


if __name__ == "__main__":
    sys.exit(main())
