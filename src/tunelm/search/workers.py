"""`tunelm search --workers N`: N local worker processes on one study, watched by this one.

Each worker is a plain `tunelm worker` process on the study's storage, the same as one started
by hand on another machine. With GPUs, each worker sees only its slice of the devices the
scheduler gave this job (CUDA_VISIBLE_DEVICES "4,5,6,7" with 2 devices per trial: "4,5" and
"6,7"; `slices.py`); on a CPU the cores are shared out (OMP_NUM_THREADS), because torch
processes that each spin one thread per core slow each other down many times over.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from ..config import Config
from ..environment import worker_env
from ..errors import ConfigError, SearchError
from ..runner.preempt import forwarding as passing_sigterm
from .budget import interrupted, spent
from .drivers import shown
from .interrupt import forwarding
from .live import LiveTable
from .opener import open_study
from .results import keep_top, summarize
from .slices import cuda_ids, plan_slices
from .space import dims_of
from .storage import storage_url
from .strategies import ALL, strategy_named

log = logging.getLogger("tunelm.search")
POLL_SECONDS = 2.0


def run_workers(cfg: Config, out: Path, storage: str | None, study_name: str | None,
                live: bool = True):
    n = cfg.search.workers
    slices = worker_slices(cfg)  # more devices than visible: exit 2 before the study exists
    study, cfg, strategy = prepare_study(cfg, out, storage, study_name)
    url = storage_url(out, storage)
    logs = out / "workers"
    logs.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "tunelm", "--quiet", "worker", "--storage", url,
           "--study", study.study_name, "--out", str(out)]
    procs = []
    for part in slices:
        i = part.index
        env = worker_env(part.devices, part.threads, os.environ)
        fh = open(logs / f"worker-{i}.log", "w", encoding="utf-8")
        # a process group of its own: Ctrl-C and SIGTERM reach this process, which passes them on
        procs.append((subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                       process_group=0), fh))
        log.info("worker %d started (pid %d, %s), log %s", i, procs[-1][0].pid,
                 part.describe(), logs / f"worker-{i}.log")
    started = time.time()
    budget = strategy.budget(cfg.search)
    table = LiveTable(budget, started)
    try:  # Ctrl-C: the workers mark their trials interrupted and end; SIGTERM (a preemption):
        # they save a checkpoint, hand their trials back and exit 75
        with forwarding([p for p, _ in procs]), passing_sigterm(*[p for p, _ in procs]):
            while any(p.poll() is None for p, _ in procs):
                if live:
                    table.update(study)
                time.sleep(POLL_SECONDS)
    finally:
        for _, fh in procs:
            fh.close()
    if live:
        table.update(study)
    failed = [(i, p.returncode) for i, (p, _) in enumerate(procs) if p.returncode != 0]
    for i, code in failed:
        log.warning("worker %d exited with code %d; see %s", i, code, logs / f"worker-{i}.log")
    if len(failed) == n:
        raise SearchError(f"every worker failed; see the logs in {logs}")
    keep_top(study, cfg.search.keep_top)
    reason = budget.exhausted(spent(study.get_trials(deepcopy=False)), time.time() - started)
    return summarize(study, url, reason or strategy.stop_reason)


def prepare_study(cfg: Config, out: Path, storage: str | None, study_name: str | None):
    """Create (or load) a study for workers to join, with its strategy's first trials
    enqueued once: (study, its config, its strategy)."""
    study, cfg = open_study(cfg, out, storage, study_name)
    strategy = strategy_named(cfg.search.strategy)
    if all(interrupted(t) for t in study.trials):  # new, or nothing ran
        for params, tag in strategy.first_trials(cfg, dims_of(cfg)):
            study.enqueue_trial(params, user_attrs={"fixed": params, "tag": tag})
    return study, cfg, strategy


def create_for_workers(cfg: Config, out: Path, storage: str | None,
                       study_name: str | None) -> str:
    """`tunelm search CONFIG --create`: the study in its storage, ready for `tunelm worker`
    processes started elsewhere (a Slurm array, a Kubernetes Job); no trial runs here.
    Returns the line that says how to join it."""
    strategy = strategy_named(cfg.search.strategy)
    if not strategy.workers_may_join:
        raise ConfigError(f"--create makes a study for workers, and workers cannot join a "
                          f"{strategy.name} study: {strategy.why_one_process}; use one of "
                          f"{', '.join(s.name for s in ALL if s.workers_may_join)}")
    study, _, _ = prepare_study(cfg, out, storage, study_name)
    url = storage_url(out, storage)
    return (f"study {study.study_name} is ready ({len(study.trials)} trial(s) so far); join it "
            f"with: tunelm worker --storage {shown(url)} --study {study.study_name}")


def worker_slices(cfg: Config):
    """The slice of this machine each of `search.workers` local workers runs on: its trials'
    `train.devices` ranks (which `search.devices_per_trial` sets) from the CUDA devices the
    scheduler listed, or its share of the CPU cores. ConfigError when they do not fit."""
    from ..runner.devices import visible  # here, not above: the runner package loads torch

    here = visible()
    ids = cuda_ids(os.environ.get("CUDA_VISIBLE_DEVICES"), here.count) if here.kind == "cuda" else []
    field = ("search.devices_per_trial" if cfg.search.devices_per_trial is not None
             else "train.devices")
    return plan_slices(cfg.search.workers, cfg.train.devices, ids, here.count, field)
