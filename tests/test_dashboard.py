"""A tunelm study opens in optuna-dashboard as it is: the real server, its JSON API."""

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import require_real


def test_optuna_dashboard_reads_a_study(tiny_config, tmp_path):
    from tunelm.config import from_dict
    from tunelm.search import run_search

    exe = Path(sys.executable).parent / "optuna-dashboard"
    require_real("optuna-dashboard", exe.exists(), "pip install optuna-dashboard (the dev extra)")
    raw = tiny_config(train={"max_steps": 4, "eval_steps": 2}).to_dict()
    raw["search"].update({"strategy": "random", "trials": 2, "pruner": "none",
                          "curve_pruner": False})
    run_search(from_dict(raw), tmp_path / "study")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(exe), f"sqlite:///{tmp_path / 'study' / 'study.db'}",
                             "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, studies = time.time() + 60, None
        while studies is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies") as r:
                    studies = json.load(r)["study_summaries"]
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    pytest.fail("optuna-dashboard did not start")
                time.sleep(0.5)
        assert [s["study_name"] for s in studies] == ["study"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/1") as r:
            trials = json.load(r)["trials"]
        assert [t["state"] for t in trials] == ["Complete", "Complete"]
        assert all([v["step"] for v in t["intermediate_values"]] == [2, 4] for t in trials)
        assert all(any(a["key"] == "trial_dir" for a in t["user_attrs"]) for t in trials)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
