"""A trial on N ranks: the torchrun command line, where a rank is, and what crosses ranks.

With `train.devices` N > 1 the trial runs as N processes started by torchrun (PyTorch's own
launcher, `python -m torch.distributed.run --standalone --nproc_per_node N`), each a child of
the process that runs the trial, the way `--isolate` starts one child. Transformers' Trainer
sees torchrun's environment (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR/PORT), joins the process
group (gloo on a CPU, NCCL on CUDA, with `ddp_timeout`) and wraps the model in DDP; its
dataloader gives each rank every N-th micro-batch of the one shuffled order.

Only rank 0 writes the trial directory and talks to Optuna; `SharedStop` hands its decision to
stop (pruned, early-stopped) to every rank at each evaluation. A rank that dies ends the others:
torchrun watches its workers and stops them all (`--max-restarts 0`), and a collective that
waits on a dead peer gives up after `RANK_TIMEOUT_S`.
"""

from __future__ import annotations

import os
import sys

from transformers import TrainerCallback

from .devices import backend

RANK_TIMEOUT_S = 600  # a collective (all-reduce, broadcast) waiting longer fails the trial


def rank() -> int:
    """This process's rank (0 outside torchrun)."""
    return int(os.environ.get("RANK", "0"))


def in_ranks() -> bool:
    """True inside a torchrun-started rank of a multi-rank trial."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "LOCAL_RANK" in os.environ


def rank_command(devices: int, module: str, *args: str) -> list[str]:
    """The command that runs `python -m module args` on `devices` ranks (one plain process
    when `devices` is 1)."""
    if devices <= 1:
        return [sys.executable, "-m", module, *args]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc-per-node={devices}", "--max-restarts=0", "--monitor-interval=1",
            "-m", module, *args]


def bind_rank_device() -> None:
    """Make a CUDA rank's default device its own GPU (LOCAL_RANK) before anything is loaded, so
    `.to("cuda")` puts the model there and not, for every rank, on GPU 0."""
    if not in_ranks():
        return
    import torch

    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))


def ddp_fields(device: str, sharding: str = "none") -> dict:
    """The TrainingArguments of a rank: the backend and the collective timeout; none outside
    torchrun (one process)."""
    if not in_ranks():
        return {}
    # LoRA and full fine-tuning use every trainable weight in each forward: no unused search
    fields = {"ddp_backend": backend(device), "ddp_timeout": RANK_TIMEOUT_S,
              "ddp_find_unused_parameters": False}
    if sharding == "fsdp" and device == "cpu":
        # our own FSDP2 on a CPU (runner/sharding.py): the Trainer would defer its gradient
        # reduction through a Transformers-loaded model's `distributed_config`, which ours has
        # not; reduce-scatter every micro-batch instead (FSDP2 sums them into the sharded grads)
        fields["accelerator_config"] = {"gradient_accumulation_kwargs": {"sync_each_batch": True}}
    return fields


def rank_config(cfg):
    """The config a rank other than 0 runs: the same training, and nothing it would write or
    report (no best checkpoint, no generation, no trackers)."""
    from ..config import from_dict

    raw = cfg.to_dict()
    # under fsdp every rank gathers the weights of best/ (rank 0 alone writes): runner/sharding.py
    raw["train"].update(save_best=cfg.train.save_best and cfg.train.sharding == "fsdp",
                        report_to="none")
    raw["eval"].update(max_examples=0, baseline=False)
    return from_dict(raw)


class SharedStop(TrainerCallback):
    """After each evaluation every rank takes rank 0's decision to stop (the pruner's, early
    stopping's), so no rank waits in a collective for a peer that has stopped. Put it last."""

    def on_evaluate(self, args, state, control, **kw):
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return
        decision = [bool(control.should_training_stop)]
        dist.broadcast_object_list(decision, src=0)
        control.should_training_stop = decision[0]


def run_on_ranks(cfg, out, *, fraction: float = 1.0, run=None, callbacks=(),
                 resume_from=None, save_state_to=None) -> dict:
    """`run_trial` of a config with `train.devices` > 1, called outside torchrun: the trial runs
    as that many ranks in children (`search.isolate`'s child, rank-aware); returns rank 0's
    result. In-process callbacks and training-state hand-over (PBT) cannot cross into them."""
    from ..errors import BadInputError, ConfigError, Preempted, TrainingError
    from ..search.isolate import run_isolated

    if callbacks or resume_from is not None or save_state_to is not None:
        raise ConfigError(f"train.devices {cfg.train.devices}: a trial on several ranks runs in "
                          "child processes, so in-process callbacks and resumed training state "
                          "(population-based training) are not supported; use train.devices=1")
    outcome = run_isolated(cfg, out, fraction, None, None, None, run=run)
    status, error = outcome["status"], outcome.get("error", "")
    if status == "ok":
        return outcome["result"]
    if status == "bad_input":
        raise BadInputError(error)
    if status == "preempted":
        raise Preempted(error, step=outcome.get("step"))
    raise TrainingError(f"the trial on {cfg.train.devices} ranks failed ({status}): {error}",
                        result=outcome.get("result") or {})
