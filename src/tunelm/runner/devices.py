"""How many ranks a trial may run on here: CUDA devices (NCCL), or gloo processes on a CPU.

`check_devices` is the one rule, pure over what `visible()` detected, so that a config asking
for more ranks than the machine has fails with exit 2 before anything starts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True)
class Visible:
    count: int  # ranks this machine accepts
    kind: str  # "cuda" or "cpu"

    @property
    def what(self) -> str:
        if self.kind == "cuda":
            listed = os.environ.get("CUDA_VISIBLE_DEVICES")
            return (f"{self.count} visible CUDA device(s)"
                    + (f" (CUDA_VISIBLE_DEVICES={listed})" if listed is not None else ""))
        return (f"{self.count} CPU core(s) this process may use: on a CPU each gloo rank "
                "needs a core of its own")


def visible() -> Visible:
    """The CUDA devices this process sees, or else the CPU cores it may run on."""
    from ..base_model import gpu_count

    gpus = gpu_count()
    if gpus:
        return Visible(gpus, "cuda")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return Visible(max(1, cores or 1), "cpu")


def check_devices(devices: int, here: Visible) -> None:
    """ConfigError (exit 2) when `train.devices` asks for more ranks than `here` has."""
    if devices > here.count:
        raise ConfigError(f"train.devices {devices} is more than this machine has: "
                          f"{here.what}; accepted: 1 to {here.count} (--devices N or "
                          f"--set train.devices=N)")


def backend(kind: str) -> str:
    """The torch.distributed backend of the ranks: NCCL between CUDA devices, gloo on a CPU."""
    return "nccl" if kind == "cuda" else "gloo"
