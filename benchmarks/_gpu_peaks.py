"""Peak dense bf16 tensor throughput of known GPUs, for model FLOPs utilisation (MFU).

NVIDIA's datasheets quote bf16 "with sparsity" (2:4 structured sparsity, which training does not
use); the dense peak is half of it. Each row: a pattern matched against
`torch.cuda.get_device_name()`, the dense peak in TFLOPS, and where the figure comes from.
More specific patterns come first (H100 PCIe before H100, L40S before L4).
"""

from __future__ import annotations

import re

PEAKS = (
    # pattern, dense bf16 TFLOPS, source
    (r"H200 NVL", 835.0, "nvidia.com/en-us/data-center/h200: 1,671 TFLOPS bf16 with sparsity"),
    (r"H200", 989.5, "nvidia.com/en-us/data-center/h200: 1,979 TFLOPS bf16 with sparsity (SXM)"),
    (r"H100 PCIe", 756.5, "nvidia.com/en-us/data-center/h100: 1,513 TFLOPS bf16 with sparsity "
                          "(PCIe)"),
    (r"H100 NVL", 835.0, "nvidia.com/en-us/data-center/h100: 1,671 TFLOPS bf16 with sparsity "
                         "(NVL)"),
    (r"H100", 989.5, "nvidia.com/en-us/data-center/h100: 1,979 TFLOPS bf16 with sparsity (SXM)"),
    (r"A100", 312.0, "NVIDIA A100 datasheet: 312 TFLOPS bf16 dense (624 with sparsity), SXM "
                     "and PCIe"),
    (r"L40S", 362.0, "nvidia.com/en-us/data-center/l40s: 733 TFLOPS bf16 with sparsity"),
    (r"\bL4\b", 121.0, "nvidia.com/en-us/data-center/l4: 242 TFLOPS bf16 with sparsity"),
    (r"\bA10G?\b", 125.0, "nvidia.com/en-us/data-center/products/a10-gpu: 250 TFLOPS bf16 with "
                          "sparsity (A10; AWS's A10G is listed at the A10's figure, an upper bound)"),
    (r"RTX 4090", 165.2, "NVIDIA Ada Lovelace architecture whitepaper: 165.2 TFLOPS bf16 with "
                         "fp32 accumulate, dense"),
)


def peak_for(device_name: str) -> tuple[float, str] | None:
    """(dense bf16 peak in FLOP/s, its source) of a device by its CUDA name, or None when it is
    not in the table (MFU is then not computed; `--peak-tflops` gives it)."""
    for pattern, tflops, source in PEAKS:
        if re.search(pattern, device_name):
            return tflops * 1e12, source
    return None


def known_names() -> str:
    """The table's patterns, for the message about a device it does not know."""
    return ", ".join(pattern.replace("\\b", "") for pattern, _, _ in PEAKS)


def mfu(params: int, tokens_per_s: float, peak_flops: float) -> float:
    """Model FLOPs utilisation: 6 x parameters x tokens per second (forward 2N, backward 4N per
    token, attention's own FLOPs left out) over the device's peak. With LoRA the frozen weights
    get no weight gradient, so the work done is nearer 4N per token: this MFU is the figure to
    compare with full fine-tuning runs and published numbers, not a measure of waste."""
    return 6.0 * params * tokens_per_s / peak_flops
