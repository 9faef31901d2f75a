"""benchmarks/gpu_check.py without a GPU: it says so and writes nothing; its table renders from a
recorded-shape result; the peak table, the MFU, the judgement of a run that stepped, and a
failing check that does not lose the others."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_check  # noqa: E402
from _gpu_checks import Context, stepped  # noqa: E402
from _gpu_peaks import mfu, peak_for  # noqa: E402


def test_without_cuda_it_says_so_and_writes_nothing(tmp_path):
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks/gpu_check.py"), "--out",
                           str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "no CUDA device: nothing measured" in proc.stdout
    assert not out.exists()


RECORDED = {
    "device": "NVIDIA H200", "gpus": 1, "torch": "2.9.0", "peak_bf16_tflops": 989.5,
    "peak_source": "nvidia.com", "seconds": 301.4,
    "checks": {
        "lora_bf16": {"ok": True, "tokens_per_s": 151234.5, "mfu": 0.1234,
                      "memory_measured_mb": 6120.0, "memory_estimate_mb": 5500.0,
                      "memory_error": -0.101, "loss_first5": 4.1, "loss_last5": 1.2,
                      "adapter_b_max_abs": 0.02, "seconds": 61.0},
        "qlora_nf4": {"ok": False, "error": "RuntimeError: tunelm train exited 2: no bnb\nmore",
                      "seconds": 9.5},
        "ddp_2": {"skipped": "needs 2 GPUs, this machine has 1"},
    },
}


def test_the_table_renders_a_recorded_result():
    table = gpu_check.render(RECORDED)
    rows = table.splitlines()
    assert rows[0].startswith("GPU check on 1 x NVIDIA H200 (dense bf16 peak 989.5 TFLOPS)")
    assert "| lora_bf16 | ok | 151,234 tok/s; MFU 12.3%; memory 6,120 MB measured, 5,500 MB " \
           "estimated (-10%); loss 4.100 -> 1.200; adapter B max 2.00e-02 | 61.0 |" in rows
    assert "| qlora_nf4 | FAILED | error: RuntimeError: tunelm train exited 2: no bnb | 9.5 |" in rows
    assert "| ddp_2 | skipped | skipped: needs 2 GPUs, this machine has 1 |  |" in rows


def test_peaks_by_device_name_and_mfu():
    assert peak_for("NVIDIA H100 PCIe")[0] == pytest.approx(756.5e12)
    assert peak_for("NVIDIA H100 80GB HBM3")[0] == pytest.approx(989.5e12)
    assert peak_for("NVIDIA L4")[0] == pytest.approx(121e12)
    assert peak_for("NVIDIA L40S")[0] == pytest.approx(362e12)
    assert peak_for("NVIDIA A100-SXM4-80GB")[0] == pytest.approx(312e12)
    assert peak_for("Tesla T4") is None and peak_for("NVIDIA L40") is None  # not L4, not known
    # 135M parameters at 100k tokens/s: 8.1e16 FLOP/s of 989.5e12
    assert mfu(135_000_000, 100_000, 989.5e12) == pytest.approx(6 * 135e6 * 1e5 / 989.5e12)


def _run(tmp_path, losses, b_value):
    import torch
    from safetensors.torch import save_file

    out = tmp_path / "run"
    (out / "best").mkdir(parents=True)
    (out / "metrics.jsonl").write_text("".join(
        json.dumps({"step": i + 1, "train_loss": x}) + "\n" for i, x in enumerate(losses)))
    save_file({"base.layers.0.q_proj.lora_A.weight": torch.ones(4, 8),
               "base.layers.0.q_proj.lora_B.weight": torch.full((8, 4), b_value)},
              str(out / "best" / "adapter_model.safetensors"))
    return out


def test_a_run_stepped_only_with_finite_falling_loss_and_a_moved_adapter(tmp_path):
    falling = [3.0 - 0.1 * i for i in range(12)]
    assert stepped(_run(tmp_path / "a", falling, 0.01))["ok"]
    assert not stepped(_run(tmp_path / "b", falling, 0.0))["ok"]  # B still zero: no step
    assert not stepped(_run(tmp_path / "c", falling[::-1], 0.01))["ok"]  # rising loss
    nan = stepped(_run(tmp_path / "d", falling[:6] + [math.nan] + falling[6:], 0.01))
    assert not nan["ok"] and not nan["loss_finite"]


def test_a_failing_check_is_recorded_and_the_plan_skips_what_cannot_run(monkeypatch, tmp_path):
    failed = gpu_check.run_check(lambda: 1 / 0)
    assert failed["ok"] is False and failed["error"].startswith("ZeroDivisionError")
    assert gpu_check.run_check("no reason")["skipped"] == "no reason"
    plan = dict(gpu_check.checks(Context(Path(tmp_path), "NVIDIA L4", 1, 121e12)))
    assert list(plan) == ["lora_bf16", "qlora_nf4", "adamw_8bit", "paged_adamw_8bit", "ddp_2",
                          "fsdp_2"]
    assert plan["ddp_2"] == plan["fsdp_2"] == "needs 2 GPUs, this machine has 1"
    monkeypatch.setattr(gpu_check, "has_sharding", lambda: False)
    two = dict(gpu_check.checks(Context(Path(tmp_path), "NVIDIA L4", 2, 121e12)))
    assert callable(two["ddp_2"]) and "no train.sharding field" in two["fsdp_2"]


def test_no_check_starts_past_the_scripts_deadline(tmp_path):
    import time

    late = Context(Path(tmp_path), "NVIDIA L4", 1, 121e12, deadline=time.time() + 5)
    with pytest.raises(TimeoutError, match="time budget was spent"):
        late.timeout()
    soon = Context(Path(tmp_path), "NVIDIA L4", 1, 121e12, deadline=time.time() + 100)
    assert 90 < soon.timeout() <= 100  # less than a check's own limit near the deadline
    failed = gpu_check.run_check(late.timeout)
    assert failed["ok"] is False and "TimeoutError" in failed["error"]
