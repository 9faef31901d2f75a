"""`tunelm search --workers N`: N local worker processes on one study, watched by this one.

Each worker is a plain `tunelm worker` process on the study's storage, the same as one started
by hand on another machine. With GPUs, worker i sees only GPU i (CUDA_VISIBLE_DEVICES); on a
CPU the cores are shared out (OMP_NUM_THREADS), because torch processes that each spin one
thread per core slow each other down many times over.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from ..base_model import gpu_count
from ..config import Config
from ..environment import worker_env
from ..errors import ConfigError, SearchError
from .budget import interrupted, spent
from .interrupt import forwarding
from .live import LiveTable
from .opener import open_study
from .results import keep_top, summarize
from .space import dims_of
from .storage import storage_url
from .strategies import strategy_named

log = logging.getLogger("tunelm.search")
POLL_SECONDS = 2.0


def run_workers(cfg: Config, out: Path, storage: str | None, study_name: str | None,
                live: bool = True):
    n = cfg.search.workers
    gpus = gpu_count()
    if gpus and n > gpus:
        raise ConfigError(f"search.workers {n} is more than the {gpus} GPUs of this machine "
                          "(one worker per GPU); start further workers on other machines with "
                          "tunelm worker --storage URL --study NAME")
    study, cfg = open_study(cfg, out, storage, study_name)
    strategy = strategy_named(cfg.search.strategy)
    if all(interrupted(t) for t in study.trials):  # new, or nothing ran
        for params, tag in strategy.first_trials(cfg, dims_of(cfg)):
            study.enqueue_trial(params, user_attrs={"fixed": params, "tag": tag})
    url = storage_url(out, storage)
    logs = out / "workers"
    logs.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "tunelm", "--quiet", "worker", "--storage", url,
           "--study", study.study_name, "--out", str(out)]
    procs = []
    for i in range(n):
        env = worker_env(i, n, gpus, os.cpu_count() or 1, os.environ)
        fh = open(logs / f"worker-{i}.log", "w", encoding="utf-8")
        # a process group of its own: Ctrl-C reaches this process, which passes it on once
        procs.append((subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                       process_group=0), fh))
        log.info("worker %d started (pid %d%s), log %s", i, procs[-1][0].pid,
                 f", GPU {i}" if gpus else f", {env['OMP_NUM_THREADS']} threads",
                 logs / f"worker-{i}.log")
    started = time.time()
    budget = strategy.budget(cfg.search)
    table = LiveTable(budget, started)
    try:  # Ctrl-C: the workers mark their trials interrupted and end
        with forwarding([p for p, _ in procs]):
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
