"""Whether a trial shards its model across the GPUs (train.sharding fsdp), and the micro-batch
that fits a device either way: pure, over the memory model.

Data parallel (every rank a whole copy) is chosen whenever a micro-batch fits one device: it
moves the least data. Only when even a micro-batch of 1 does not fit, with gradient
checkpointing, and there are several GPUs, are the weights, gradients and optimizer state
divided among them (FSDP, `memory.estimate(shards=N)`). QLoRA's 4-bit weights are not sharded
(config_check refuses fsdp with qlora).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import sources as S
from .advice import Advice
from .memory import largest_micro_batch


@dataclass(frozen=True)
class Fit:
    """What fits one device: the micro-batch (None: nothing), with gradient checkpointing or
    not, over `shards` ranks (1: not sharded)."""

    micro: int | None
    gradient_checkpointing: bool
    shards: int

    @property
    def sharding(self) -> str:
        return "fsdp" if self.shards > 1 else "none"


def fit(facts, memory_gib: float, per_device: int, gpus: int, kw: dict) -> Fit:
    """The largest micro-batch up to `per_device` that fits `memory_gib` by the estimate (`kw`:
    its arguments but the batch, checkpointing and shards): unsharded if anything fits, else
    sharded over the `gpus` (LoRA and full fine-tuning)."""
    plain = _fit_one(facts, memory_gib, per_device, kw, shards=1)
    if plain.micro is not None or gpus < 2 or kw.get("method") == "qlora":
        return plain
    sharded = _fit_one(facts, memory_gib, per_device, kw, shards=gpus)
    return sharded if sharded.micro is not None else plain


def _fit_one(facts, memory_gib: float, per_device: int, kw: dict, shards: int) -> Fit:
    """Without checkpointing unless it is QLoRA's or it buys a larger micro-batch where the
    plain one is under `MICRO_BATCH_WANTED`."""
    gc = kw.get("method") == "qlora"
    micro = largest_micro_batch(facts, memory_gib, per_device, gradient_checkpointing=gc,
                                shards=shards, **kw)
    if (micro is None or micro < min(S.MICRO_BATCH_WANTED, per_device)) and not gc:
        with_gc = largest_micro_batch(facts, memory_gib, per_device, gradient_checkpointing=True,
                                      shards=shards, **kw)
        if with_gc and (micro is None or with_gc > micro):
            micro, gc = with_gc, True
    return Fit(micro, gc, shards)


def sharding_advice(f: Fit, gpus: int, memory_gib: float) -> Advice:
    """train.sharding, with the reason the memory model gives."""
    if f.shards > 1:
        return Advice("fsdp", f"a whole copy of the model does not fit {memory_gib:.0f} GiB even "
                      f"at micro-batch 1: sharded over {f.shards} GPUs, each keeps 1/{f.shards} of "
                      "the weights, gradients and optimizer state (activations stay per GPU)",
                      "fsdp")
    if gpus > 1:
        return Advice("none", f"the model fits one {memory_gib:.0f} GiB GPU: plain data parallel "
                      "(a whole copy per GPU) moves the least data", "tunelm memory model")
    return Advice("none", "one device: nothing to shard", "tunelm memory model")
