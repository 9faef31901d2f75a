"""A trial under `train.sharding: fsdp`: what changes when the ranks share the model out.

The Trainer shards (FSDP2 through accelerate, `hf_args.sharding_kwargs`): after its `prepare`
every decoder layer and the root are `fully_shard`ed in place, each rank holding 1/N of every
weight, gradient and optimizer state, and a forward all-gathers a layer's weights from every
rank. Two things follow for the trial:

- **best/ is gathered by every rank.** Saving needs the full weights, and gathering them is a
  collective: at each new best eval loss every rank joins `save_model` and rank 0 alone writes
  a normal checkpoint (`save_pretrained`: full weights, or the adapter), which reloads without
  FSDP and exports like any other.
- **Resumable checkpoints rank by rank.** A periodic or SIGTERM checkpoint is each rank's shard
  of the trainable weights and optimizer state (`sharded_checkpoint.py`), never gathered.
- **No task metrics by generation.** Generation on sharded weights would need every rank to run
  the same forwards in step; a trial scores eval loss only, and `tunelm evaluate` scores best/
  afterwards (config_check refuses `search.objective exact_match` under fsdp).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from .launch import in_ranks

log = logging.getLogger("tunelm.train")


def sharded(cfg) -> bool:
    """True when the trial's ranks shard the model (train.sharding fsdp)."""
    return cfg.train.sharding == "fsdp"


def sharded_config(cfg):
    """The config a trial under fsdp runs: no generation (task metrics, baseline), said once."""
    from ..config import from_dict

    if not sharded(cfg) or (cfg.eval.max_examples == 0 and not cfg.eval.baseline):
        return cfg
    log.info("train.sharding fsdp: no task metrics by generation in the trial (eval loss only); "
             "score best/ afterwards with tunelm evaluate")
    raw = cfg.to_dict()
    raw["eval"].update(max_examples=0, baseline=False)
    return from_dict(raw)


def shard_on_cpu(model, cfg, device: str) -> None:
    """Under train.sharding fsdp on CPU ranks (torchrun): shard `model` in place with PyTorch's
    FSDP2 (`fully_shard`) on the gloo group, and mark it the way Transformers marks a model
    sharded at load time, so the Trainer neither wraps it in DDP nor shards it again and keeps
    any replicated trainable weight in step across the ranks.

    Only on a CPU: accelerate (1.15) turns its FSDP plugin on for accelerators alone
    (`AcceleratorState` keeps `fsdp_plugin` only for MULTI_GPU/XPU/NPU/... ranks, not
    MULTI_CPU), so on gloo ranks the Trainer's `fsdp=` would silently train plain DDP.
    On CUDA the Trainer shards through accelerate (`hf_args.sharding_kwargs`)."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    if device != "cpu" or not sharded(cfg) or not in_ranks():
        return
    if not dist.is_initialized():  # torchrun's environment names the group
        dist.init_process_group("gloo")
    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    layers = set(getattr(_inner(model), "_no_split_modules", None) or ())
    for module in list(model.modules()):  # one shard group per decoder layer, as accelerate
        if type(module).__name__ in layers:
            fully_shard(module, mesh=mesh)
    fully_shard(model, mesh=mesh)  # the root: embeddings, final norm, head
    _inner(model)._is_distributed_loading_by_transformers = True  # what the Trainer reads
    held, total = held_parameters(model)
    log.info("fsdp | %d ranks | this rank holds %d of %d parameter values", dist.get_world_size(),
             held, total)


def held_parameters(model) -> tuple[int, int]:
    """(parameter values this rank stores, parameter values of the whole model): a sharded
    parameter (a DTensor) counts its local shard against its full size."""
    held = total = 0
    for p in model.parameters():
        local = p.to_local() if hasattr(p, "to_local") else p
        held, total = held + local.numel(), total + p.numel()
    return held, total


def _inner(model):
    """The Transformers model inside a PEFT one (the one that names its layer classes)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def is_sharded_model(model) -> bool:
    """True when `model` is managed by FSDP2 (`fully_shard` turned it into an FSDPModule)."""
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # a torch without FSDP2
        return False
    return isinstance(model, FSDPModule)


def full_state_dict(model) -> dict:
    """The full (unsharded) state dict of an FSDP2 model, on the CPU of rank 0; an empty dict on
    every other rank. A collective: every rank must call it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options)


def save_model(model, tokenizer, target: Path, write: bool = True) -> None:
    """`save_pretrained` of `model` and `tokenizer` into `target` (through a temporary sibling,
    so a reader never sees half a checkpoint). A sharded model's weights are gathered first, by
    every rank; only rank 0 writes (`write` False: join the gathering, write nothing)."""
    state = None
    if is_sharded_model(model):
        import torch.distributed as dist

        state = full_state_dict(model)
        write = write and dist.get_rank() == 0
    if not write:
        return
    target = Path(target)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if state is None:
        model.save_pretrained(tmp)
    else:
        model.save_pretrained(tmp, state_dict=state)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
