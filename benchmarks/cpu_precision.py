"""Is bf16 autocast faster than fp32 on this CPU? It depends on the CPU, so tunelm checks.

On CPUs with AVX512-BF16 or AMX, bf16 autocast roughly doubles LoRA training throughput; on
AVX2-only CPUs bf16 matmuls are emulated and run far slower than fp32, so `model.precision: auto`
picks fp32 there (tunelm.models.cpu_has_fast_bf16). This script measures both in the same run:

    .venv/bin/python benchmarks/cpu_precision.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def timed(fn, repeats=3):
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> int:
    import torch

    from tunelm.base_model import cpu_has_fast_bf16

    a, b = torch.randn(512, 576), torch.randn(576, 1536)

    def mm(dtype):
        x, y = a.to(dtype), b.to(dtype)
        return lambda: x @ y

    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(vocab_size=512, hidden_size=256, intermediate_size=512,
                                         num_hidden_layers=2, num_attention_heads=4))
    ids = torch.randint(0, 512, (4, 64))

    def step(autocast):
        def run():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
        return run

    fast = cpu_has_fast_bf16()
    slow_repeats = 3 if fast else 1  # emulated bf16 takes long enough with one repeat
    record = {
        "cpu_has_fast_bf16": fast,
        "matmul_fp32_s": timed(mm(torch.float32)),
        "matmul_bf16_s": timed(mm(torch.bfloat16), repeats=slow_repeats),
        "train_step_fp32_s": timed(step(False)),
        "train_step_bf16_autocast_s": timed(step(True), repeats=slow_repeats),
    }
    record["matmul_bf16_over_fp32"] = record["matmul_bf16_s"] / record["matmul_fp32_s"]
    record["step_bf16_over_fp32"] = record["train_step_bf16_autocast_s"] / record["train_step_fp32_s"]
    # one record per kind of CPU: the answer differs between them
    out = ROOT / "benchmarks" / "data" / f"cpu_precision-{'avx512bf16' if fast else 'avx2'}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
