"""Every bad input is answered with exit code 2 and a message that names the problem; nothing is
half-written."""

import subprocess
import sys
from pathlib import Path

import pytest

from tunelm.cli import main

from .conftest import ROOT, arithmetic_rows, write_jsonl


def run(capsys, *argv):
    code = main(["-q", *argv])
    return code, capsys.readouterr().err


def tiny_args(train, out, *extra):
    return ["train", "presets/tiny.yaml", "--out", str(out), "--set", f"data.train={train}",
            "--set", "data.max_length=64", *extra]


@pytest.mark.parametrize("overrides, needle", [
    (["train.learning_rate=-0.001"], "train.learning_rate must be > 0, got -0.001"),
    (["train.scheduler=cosinus"], "train.scheduler must be one of linear, cosine"),
    (["train.batch_sise=4"], "unknown field 'train.batch_sise' (did you mean 'batch_size'?)"),
    (["model.method=prefix"], "model.method must be one of lora, qlora, full, got 'prefix'"),
    (["lora.r=0", "train.epochs=-1"], "2 problems in the config"),
    (["train.learning_rate"], "--set expects KEY=VALUE"),
])
def test_bad_config_values(capsys, tmp_path, overrides, needle):
    argv = ["train", "presets/tiny.yaml", "--out", str(tmp_path / "r")]
    for o in overrides:
        argv += ["--set", o]
    code, err = run(capsys, *argv)
    assert code == 2
    assert needle in err
    assert "Traceback" not in err
    assert not (tmp_path / "r").exists(), "a rejected config writes nothing"


def test_missing_config_file(capsys, tmp_path):
    code, err = run(capsys, "train", str(tmp_path / "nope.yaml"))
    assert code == 2 and "does not exist" in err


@pytest.mark.parametrize("content, needle", [
    ('{"messages": [\n', "train.jsonl:1: line is not valid JSON"),
    ('{"prompt": "q", "completion": "a"}\n{"prompt": "q"}\n', "train.jsonl:2: cannot tell the format"),
    ("", "is empty"),
])
def test_malformed_data(capsys, tmp_path, content, needle):
    path = tmp_path / "train.jsonl"
    path.write_text(content)
    code, err = run(capsys, *tiny_args(path, tmp_path / "r"))
    assert code == 2 and needle in err
    assert not (tmp_path / "r").exists(), "bad data leaves no half-written trial directory"


def test_every_example_too_long(capsys, tmp_path):
    rows = [{"prompt": "x" * 300, "completion": "y"} for _ in range(4)]
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    code, err = run(capsys, *tiny_args(path, tmp_path / "r"))
    assert code == 2 and "raise data.max_length" in err


def test_missing_data_file(capsys, tmp_path):
    code, err = run(capsys, *tiny_args(tmp_path / "absent.jsonl", tmp_path / "r"))
    assert code == 2 and "absent.jsonl does not exist" in err


def test_qlora_without_cuda_is_bad_input(capsys, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    path = write_jsonl(tmp_path / "train.jsonl", arithmetic_rows(8, 0))
    code, err = run(capsys, *tiny_args(path, tmp_path / "r", "--set", "model.method=qlora"))
    assert code == 2 and "qlora needs a CUDA GPU" in err


def test_unknown_model(capsys, tmp_path):
    path = write_jsonl(tmp_path / "train.jsonl", arithmetic_rows(8, 0))
    code, err = run(capsys, *tiny_args(path, tmp_path / "r", "--set", "model.name=./no/such/dir"))
    assert code == 2 and "model.name" in err
    code, err = run(capsys, *tiny_args(path, tmp_path / "r", "--set", "model.name=tiny:wide=3"))
    assert code == 2 and "tiny models take integer options" in err


def test_validate_command(capsys, tmp_path):
    assert main(["validate", "presets/tiny.yaml"]) == 0
    assert "valid" in capsys.readouterr().out
    code, err = run(capsys, "validate", "presets/llama3-8b-lora.yaml",
                    "--set", f"data.train={tmp_path / 'none.jsonl'}")
    assert code == 2 and "none.jsonl does not exist" in err


def test_bad_arguments_exit_2_from_the_real_entry_point(tmp_path):
    exe = Path(sys.executable).parent / "tunelm"
    proc = subprocess.run([str(exe), "train"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and "config" in proc.stderr
    proc = subprocess.run([str(exe), "train", "presets/tiny.yaml", "--set", "train.lr=1"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert "unknown field 'train.lr'" in proc.stderr and "Traceback" not in proc.stderr
