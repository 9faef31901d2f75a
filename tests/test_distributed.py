"""One study, three `tunelm worker` processes, a real PostgreSQL server, one worker killed.

The server is started here from Debian's PostgreSQL binaries (`make test` installs them) in a
throwaway data directory, on a free port, and stopped at the end.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import require_real

TRIALS = 12


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root; as root, run its commands as the postgres user."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="module")
def postgres_url():
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = bins[-1] if bins else shutil.which("initdb")
    require_real("PostgreSQL", initdb is not None,
                 "apt-get install postgresql (make test installs it)")
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        require_real("psycopg2", False, "pip install psycopg2-binary (the dev extra has it)")
    bindir = Path(initdb).parent
    root = Path(tempfile.mkdtemp(prefix="tunelm-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    port = _free_port()
    subprocess.run(_as_postgres([str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                                 "-A", "trust", "--no-sync"]), check=True, capture_output=True)
    subprocess.run(_as_postgres([
        str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w", "-o",
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"]) + ["start"],
        check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                                     "stop"]), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _worker(url: str, out: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    cmd = [str(Path(sys.executable).parent / "tunelm"), "--quiet", "worker", "--storage", url,
           "--study", "shared", "--out", str(out)]
    return subprocess.Popen(cmd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)


def test_three_workers_one_killed(postgres_url, tiny_config, tmp_path):
    import optuna
    from optuna.trial import TrialState

    from tunelm.search import open_study

    # a heartbeat every 2 s, stored with the study: every worker reads it from there
    cfg = tiny_config(train={"max_steps": 40, "eval_steps": 8},
                      search={"strategy": "random", "trials": TRIALS, "pruner": "none",
                              "heartbeat_seconds": 2})
    out = tmp_path / "study"
    open_study(cfg, out, postgres_url, "shared")  # created as `tunelm search` would create it

    procs = [_worker(postgres_url, out, tmp_path / f"worker{i}.log") for i in range(3)]
    victim = procs[0]
    storage = optuna.storages.RDBStorage(postgres_url)
    study = optuna.load_study(study_name="shared", storage=storage)
    killed = None
    deadline = time.time() + 240
    while killed is None and time.time() < deadline:
        for i, p in enumerate(procs):
            assert p.poll() is None, (tmp_path / f"worker{i}.log").read_text()[-3000:]
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t.user_attrs.get("worker", "").endswith(f":{victim.pid}"):
                metrics = Path(t.user_attrs["trial_dir"]) / "metrics.jsonl"
                if metrics.exists() and metrics.read_text().count("\n") >= 2:  # mid-trial
                    victim.send_signal(signal.SIGKILL)
                    killed = t.number
                    break
        time.sleep(0.2)
    assert killed is not None, "the victim worker never ran a trial"
    for p in procs[1:]:
        assert p.wait(timeout=300) == 0, (tmp_path / "worker1.log").read_text()[-3000:]
    victim.wait(timeout=10)

    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == TRIALS
    failed = [t for t in trials if t.state == TrialState.FAIL]
    # the killed trial failed; any other failure is a trial created in a race for the last
    # place and closed unrun
    assert killed in [t.number for t in failed]
    for t in failed:
        assert t.number == killed or t.user_attrs.get("not_run"), t
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    # the killed trial was retried once, with its parameters, and finished
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1 and retries[0] in finished
    victim_trial = next(t for t in trials if t.number == killed)
    assert retries[0].params == victim_trial.params
    # none twice: every finished trial ran in its own directory, once
    dirs = [t.user_attrs["trial_dir"] for t in finished]
    assert len(set(dirs)) == TRIALS
    for d in dirs:
        result = json.loads((Path(d) / "result.json").read_text())
        assert result["final_step"] > 0
        assert yaml.safe_load((Path(d) / "config.yaml").read_text())
    workers = {t.user_attrs["worker"] for t in finished}
    assert len(workers) >= 2  # the survivors shared the work
