"""Which devices each local worker of `tunelm search --workers N` gets: pure, tested without GPUs.

A scheduler (Slurm, Kubernetes, a shared workstation) hands a job its GPUs as a list in
`CUDA_VISIBLE_DEVICES`, e.g. "4,5,6,7"; those are the devices to share out, not 0..N-1. Each
worker takes the next `devices_per_trial` of them, so with 2 per trial the workers see "4,5"
and "6,7", and each of their trials runs on its 2 devices as 2 ranks. On a CPU the ranks are
gloo processes: workers x ranks must fit the cores (a rank waits on its peers at every step, so
two ranks on one core stall each other), and the cores are shared out among them. One-rank
workers on a CPU may outnumber the cores, as before: they only run slower.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True)
class Slice:
    """What local worker `index` runs on."""

    index: int
    devices: tuple[str, ...]  # CUDA device ids (CUDA_VISIBLE_DEVICES); empty on a CPU
    threads: int  # threads of each rank (OMP_NUM_THREADS) on a CPU; 0 with GPUs

    def describe(self) -> str:
        if self.devices:
            return f"GPU{'s' if len(self.devices) > 1 else ''} {','.join(self.devices)}"
        return f"{self.threads} thread{'s' if self.threads > 1 else ''} per rank"


def cuda_ids(listed: str | None, count: int) -> list[str]:
    """The ids of the `count` CUDA devices this process sees, as the scheduler named them in
    `CUDA_VISIBLE_DEVICES` (`listed`; indices, GPU-/MIG- UUIDs), or 0..count-1 when unset.
    CUDA stops at the first id it cannot use, so only the first `count` are visible."""
    if listed is None:
        return [str(i) for i in range(count)]
    return [x.strip() for x in listed.split(",") if x.strip()][:count]


def plan_slices(workers: int, per_trial: int, gpu_ids: list[str], cores: int,
                per_trial_field: str = "search.devices_per_trial") -> list[Slice]:
    """One slice per worker: the next `per_trial` of `gpu_ids` (empty on a CPU), or on a CPU
    an equal share of `cores` for each of the workers x per_trial ranks. ConfigError (exit 2)
    when workers x per_trial is more than the machine has, naming both and what it has."""
    need = workers * per_trial
    if not gpu_ids and per_trial == 1:
        return [Slice(i, (), max(1, cores // workers)) for i in range(workers)]
    if gpu_ids:
        have, what = len(gpu_ids), (f"{len(gpu_ids)} visible CUDA device(s) "
                                    f"[{', '.join(gpu_ids)}]")
    else:
        have, what = cores, f"{cores} CPU core(s) (each gloo rank needs a core of its own)"
    if need > have:
        raise ConfigError(
            f"search.workers {workers} x {per_trial_field} {per_trial} = {need} devices, more "
            f"than this machine has: {what}; accepted: workers x {per_trial_field} <= {have}. "
            "Lower --workers or the devices per trial, or start further workers on other "
            "machines with tunelm worker --storage URL --study NAME")
    if gpu_ids:
        return [Slice(i, tuple(gpu_ids[i * per_trial:(i + 1) * per_trial]), 0)
                for i in range(workers)]
    return [Slice(i, (), max(1, cores // need)) for i in range(workers)]
