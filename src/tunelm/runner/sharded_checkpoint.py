"""Resumable checkpoints of a trial under `train.sharding: fsdp`: each rank saves its own shards.

The Trainer's checkpoint of a sharded model is accelerate's, and only for a model accelerate
sharded (on CUDA); on gloo CPU ranks tunelm shards the model itself (`sharding.shard_on_cpu`),
where the Trainer would look for adapter or weight files that a sharded model never writes. So
a sharded trial runs `ShardedTrainer`, which replaces the three places the Trainer touches a
checkpoint's weights and optimizer, and leaves the rest to it:

- `_save_checkpoint`: the trainable weights and the optimizer state go through PyTorch's
  distributed checkpoint (`torch.distributed.checkpoint`, DCP): every rank writes its own shard
  into one directory, `<trial>/hf/checkpoint-N/sharded/` (a collective; frozen base weights are
  left out: they come from the model the trial loads). Rank 0 adds the scheduler and
  `trainer_state.json` (the step, hence the data position); every rank its RNG state, as for an
  unsharded checkpoint. `checkpoint.Checkpointer` then publishes it as `<trial>/resume`.
- `_load_from_checkpoint`: nothing; the weights need the optimizer, which does not exist yet.
- `_load_optimizer_and_scheduler`: once the optimizer exists, every rank reads its shards of the
  weights and optimizer state back (DCP reshards when the layout differs), and the scheduler.
  The Trainer restores the RNG states and skips the batches already trained.

The number of ranks is part of the config fingerprint (`train.devices`), so a checkpoint is only
resumed by as many ranks as saved it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from transformers import Trainer

log = logging.getLogger("tunelm.train")

SHARDS = "sharded"  # the DCP directory inside a checkpoint
SCHEDULER = "scheduler.pt"
TRAINER_STATE = "trainer_state.json"


def _options(strict: bool = True):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    # LoRA: the adapter alone (the base weights are the loaded model's); full: every weight.
    # Loading is not strict about the frozen weights it leaves out (load_shards checks the rest)
    return StateDictOptions(ignore_frozen_params=True, strict=strict)


def _frozen(model) -> set[str]:
    """Names of the frozen weights, tied ones included under each name (a tied output head is
    one parameter that `named_parameters` lists once, under the embedding's name)."""
    return {n for n, p in model.named_parameters(remove_duplicate=False) if not p.requires_grad}


def _state(model, optimizer, frozen: set[str]) -> dict:
    """The trainable weights and the optimizer state; `frozen`: `_frozen(model)`."""
    from torch.distributed.checkpoint.state_dict import get_state_dict

    weights, optim = get_state_dict(model, optimizer, options=_options())
    # ignore_frozen_params keeps a tied head (113 MB for SmolLM2): `frozen` names it
    return {"model": {k: v for k, v in weights.items() if k not in frozen}, "optimizer": optim}


def save_shards(model, optimizer, directory: Path) -> None:
    """Every rank's shard of the trainable weights and the optimizer state into `directory`
    (DCP: one file per rank and rank 0's metadata). A collective: every rank calls it."""
    import torch.distributed.checkpoint as dcp

    dcp.save(_state(model, optimizer, _frozen(model)), checkpoint_id=str(directory))


def load_shards(model, optimizer, directory: Path) -> None:
    """The weights and optimizer state `save_shards` wrote, into this rank's shards. A
    collective."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import set_state_dict

    frozen = _frozen(model)
    state = _state(model, optimizer, frozen)  # the layout to read into
    dcp.load(state, checkpoint_id=str(directory))
    keys = set_state_dict(model, optimizer, model_state_dict=state["model"],
                          optim_state_dict=state["optimizer"], options=_options(strict=False))
    missing = [k for k in keys.missing_keys if k not in frozen]
    if missing or keys.unexpected_keys:  # the model is not the one that saved the checkpoint
        raise RuntimeError(f"the sharded checkpoint {directory} does not fit this model: missing "
                           f"{missing[:5]}, unexpected {list(keys.unexpected_keys)[:5]}")


def is_sharded_checkpoint(directory: str | os.PathLike | None) -> bool:
    return directory is not None and (Path(directory) / SHARDS / ".metadata").exists()


class ShardedTrainer(Trainer):
    """The Trainer for a sharded trial: checkpoints through DCP (see the module doc).
    `checkpoint_home` is the trial directory every rank writes its shard under (a rank other
    than 0 has a scratch output directory of its own)."""

    checkpoint_home: Path | None = None

    def _save_checkpoint(self, model, trial=None) -> None:
        import torch

        name = f"checkpoint-{self.state.global_step}"
        own = Path(self._get_output_dir(trial=trial)) / name  # this rank's RNG state
        shared = Path(self.checkpoint_home) / "hf" / name if self.checkpoint_home else own
        own.mkdir(parents=True, exist_ok=True)
        shared.mkdir(parents=True, exist_ok=True)
        save_shards(self.model_wrapped, self.optimizer, shared / SHARDS)
        self._save_rng_state(str(own))
        if self.args.should_save:  # rank 0
            torch.save(self.lr_scheduler.state_dict(), shared / SCHEDULER)
            self._save_scaler(str(shared))
            self.state.save_to_json(str(shared / TRAINER_STATE))

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None) -> None:
        if not is_sharded_checkpoint(resume_from_checkpoint):
            super()._load_from_checkpoint(resume_from_checkpoint, model)
        # sharded: with the optimizer, in _load_optimizer_and_scheduler

    def _load_optimizer_and_scheduler(self, checkpoint) -> None:
        import torch

        if not is_sharded_checkpoint(checkpoint):
            return super()._load_optimizer_and_scheduler(checkpoint)
        load_shards(self.model_wrapped, self.optimizer, Path(checkpoint) / SHARDS)
        self.lr_scheduler.load_state_dict(
            torch.load(Path(checkpoint) / SCHEDULER, map_location="cpu", weights_only=True))
        log.info("resumed the shards of weights and optimizer state from %s", checkpoint)


__all__ = ["ShardedTrainer", "is_sharded_checkpoint", "load_shards", "save_shards"]
