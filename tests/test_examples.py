"""examples/ (Slurm, Kubernetes): every `tunelm ...` command line in them, shell, YAML or
README, parses with the real command-line parser; the sbatch script is valid bash; every YAML
parses, and the study config they share validates. `search --create` makes the study they join."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import yaml

from tests.conftest import ROOT
from tunelm.cli import build_parser, main
from tunelm.config import from_dict, load_config

EXAMPLES = ROOT / "examples"
TEXT_FILES = sorted(p for p in EXAMPLES.rglob("*") if p.suffix in (".sbatch", ".sh", ".md"))
YAML_FILES = sorted(EXAMPLES.rglob("*.yaml"))


# a command line: `tunelm ...`, perhaps after a prompt, exec, or srun and its options
COMMAND_LINE = re.compile(r"^(\$\s+)?(exec\s+)?(srun\s.*?)?tunelm\s")


def shell_commands(text: str) -> list[list[str]]:
    """The argument lists after each `tunelm` word of shell text (comments included: they show
    the commands to run), continuation lines joined, "$VARS" kept as words."""
    text = text.replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        line = re.sub(r"^\s*#+\s?", "", line).strip()  # a commented usage line counts too
        if not COMMAND_LINE.match(line):
            continue  # prose that names tunelm
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue  # prose with an odd quote
        if "tunelm" in words:
            found.append(words[words.index("tunelm") + 1:])
    return found


def containers(node):
    """Every container (a dict with an image) anywhere in a YAML document."""
    if isinstance(node, dict):
        if "image" in node and ("command" in node or "args" in node):
            yield node
        for value in node.values():
            yield from containers(value)
    elif isinstance(node, list):
        for value in node:
            yield from containers(value)


def yaml_commands(text: str) -> list[list[str]]:
    comments = [line for line in text.splitlines() if line.lstrip().startswith("#")]
    found = shell_commands("\n".join(comments))
    for doc in yaml.safe_load_all(text):
        for c in containers(doc):
            argv = [str(x) for x in (c.get("command") or []) + (c.get("args") or [])]
            if argv and Path(argv[0]).name == "tunelm":
                found.append(argv[1:])
            elif argv[:1] in (["sh"], ["bash"], ["/bin/sh"], ["/bin/bash"]):
                found += shell_commands(argv[-1])
    return found


def unparsable(argv: list[str]) -> str | None:
    """The parser's complaint about `tunelm argv`, or None when it parses."""
    import contextlib
    import io

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            build_parser().parse_args(argv)
    except SystemExit as exc:
        return f"exit {exc.code}: {err.getvalue().strip()}"
    return None


def all_commands() -> list[tuple[str, list[str]]]:
    out = []
    for path in TEXT_FILES:
        out += [(path.name, argv) for argv in shell_commands(path.read_text())]
    for path in YAML_FILES:
        out += [(path.name, argv) for argv in yaml_commands(path.read_text())]
    return out


def test_the_extraction_finds_commands_and_the_check_can_fail():
    text = 'exec srun -n1 \\\n  tunelm worker --storage "$URL" --study s  # joins\n'
    assert shell_commands(text) == [["worker", "--storage", "$URL", "--study", "s"]]
    assert unparsable(["worker", "--storage", "u", "--study", "s", "--gpus", "2"])
    assert unparsable(["worker", "--storage", "u", "--study", "s"]) is None


def test_every_tunelm_command_in_the_examples_parses(monkeypatch):
    monkeypatch.chdir(ROOT)  # config paths in the commands are relative to the repository
    commands = all_commands()
    files = {name for name, _ in commands}
    # the launchers and their READMEs, with worker and study-creation commands in each
    assert {"tunelm-workers.sbatch", "workers.yaml", "study.yaml", "README.md"} <= files
    assert {argv[0] for _, argv in commands} >= {"worker", "search"}
    problems = [f"{name}: tunelm {shlex.join(argv)}: {why}" for name, argv in commands
                if (why := unparsable(argv))]
    assert not problems, "\n".join(problems)


def test_the_sbatch_script_is_valid_bash_and_forwards_the_signal():
    for script in EXAMPLES.rglob("*.sbatch"):
        subprocess.run(["bash", "-n", str(script)], check=True)
        text = script.read_text()
        assert re.search(r"#SBATCH --signal=B:TERM@\d+", text)
        assert re.search(r"^exec srun ", text, re.M)  # srun gets the signal and forwards it


def test_every_yaml_parses_and_the_study_config_validates():
    assert len(YAML_FILES) >= 4
    kinds = set()
    for path in YAML_FILES:
        for doc in yaml.safe_load_all(path.read_text()):
            assert isinstance(doc, dict), path
            kinds.add(doc.get("kind"))
    assert {"StatefulSet", "Service", "Job", "ConfigMap", "Secret"} <= kinds
    workers = next(d for d in yaml.safe_load_all((EXAMPLES / "kubernetes/workers.yaml")
                                                 .read_text()) if d["kind"] == "Job")
    assert workers["spec"]["completionMode"] == "Indexed"
    assert workers["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 60
    slurm = load_config(EXAMPLES / "slurm/study.yaml")
    config_map = next(d for d in yaml.safe_load_all((EXAMPLES / "kubernetes/study.yaml")
                                                    .read_text()) if d["kind"] == "ConfigMap")
    k8s = from_dict(yaml.safe_load(config_map["data"]["study.yaml"]))
    assert k8s.to_dict() == slurm.to_dict()  # the two launchers run the same study
    assert slurm.train.devices == slurm.search.devices_per_trial == 2
    sbatch = (EXAMPLES / "slurm/tunelm-workers.sbatch").read_text()
    assert f"--gpus-per-task={slurm.search.devices_per_trial}" in sbatch
    assert f"nvidia.com/gpu: {slurm.search.devices_per_trial}" in (
        EXAMPLES / "kubernetes/workers.yaml").read_text()


def test_create_makes_the_study_and_runs_no_trial(tmp_path, capsys):
    import optuna

    raw = load_config(ROOT / "presets/tiny.yaml").to_dict()
    raw["search"].update(strategy="tpe", trials=4)
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps(raw))
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    assert main(["-q", "search", str(config), "--storage", url, "--study", "s1",
                 "--out", str(tmp_path / "runs"), "--create"]) == 0
    assert f"tunelm worker --storage {url} --study s1" in capsys.readouterr().out
    study = optuna.load_study(study_name="s1", storage=url)
    states = {t.state.name for t in study.trials}
    assert states == {"WAITING"}  # the recommended config, queued for the first worker
    assert main(["-q", "search", str(config), "--storage", url, "--study", "s1",
                 "--out", str(tmp_path / "runs"), "--create"]) == 0  # again: nothing changes
    assert len(optuna.load_study(study_name="s1", storage=url).trials) == len(study.trials)
    raw["search"]["strategy"] = "protocol"
    config.write_text(json.dumps(raw))
    assert main(["-q", "search", str(config), "--storage", url, "--study", "s2",
                 "--create"]) == 2
    assert "workers cannot join a protocol study" in capsys.readouterr().err


def test_a_worker_given_fewer_devices_than_the_trials_need_exits_2(tmp_path, capsys):
    import optuna

    raw = load_config(ROOT / "presets/tiny.yaml").to_dict()
    raw["search"].update(strategy="random", trials=2, devices_per_trial=4096)
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps(raw))
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    # created on a login node: the trials run elsewhere, so its devices are not checked there
    assert main(["-q", "search", str(config), "--storage", url, "--study", "big", "--create"]) == 0
    capsys.readouterr()
    assert main(["-q", "worker", "--storage", url, "--study", "big",
                 "--out", str(tmp_path / "runs")]) == 2
    assert "train.devices 4096 is more than this machine has" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
    assert all(t.state.name == "WAITING"
               for t in optuna.load_study(study_name="big", storage=url).trials)
