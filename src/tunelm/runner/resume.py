"""Continue a run from another run's training state: what population-based training needs.

`save_training_state` writes, at the end of a run, everything Transformers' Trainer reads back
with `train(resume_from_checkpoint=DIR)`: the adapter (or full weights), the optimizer and
scheduler state and `trainer_state.json` (global step, log history), under Trainer's own file
names. A run resumed from it continues the step counter, Adam's moments and the data order.

Trainer restores the optimizer's and scheduler's hyperparameters with their state, so the
parent's learning rate would silently win over the child's. `NewHyperparameters` puts the
resumed run's own learning rate and weight decay back once everything is loaded.
"""

from __future__ import annotations

from pathlib import Path

from transformers import TrainerCallback


class NewHyperparameters(TrainerCallback):
    """After a resume: the learning rate and weight decay of this run's arguments, not the saved
    ones. The scheduler keeps its step and applies its own schedule to the new peak rate."""

    def on_train_begin(self, args, state, control, optimizer=None, lr_scheduler=None, **kw):
        if optimizer is None:
            return
        base = [args.learning_rate] * len(optimizer.param_groups)
        if lr_scheduler is not None and hasattr(lr_scheduler, "base_lrs"):
            lr_scheduler.base_lrs = list(base)
            factors = [fn(lr_scheduler.last_epoch) for fn in lr_scheduler.lr_lambdas]
        else:
            factors = [1.0] * len(base)
        for i, (group, lr, f) in enumerate(zip(optimizer.param_groups, base, factors)):
            group["initial_lr"] = lr
            group["lr"] = lr * f
            if i == 0:  # Trainer's first group decays, the second (norms, biases) never does
                group["weight_decay"] = args.weight_decay
        if lr_scheduler is not None and hasattr(lr_scheduler, "_last_lr"):
            lr_scheduler._last_lr = [g["lr"] for g in optimizer.param_groups]


def save_training_state(trainer, model, target: Path) -> Path:
    """The weights, optimizer, scheduler and trainer state of `trainer` now, into `target`."""
    import torch
    from transformers.trainer import OPTIMIZER_NAME, SCHEDULER_NAME, TRAINER_STATE_NAME

    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)
    torch.save(trainer.optimizer.state_dict(), target / OPTIMIZER_NAME)
    torch.save(trainer.lr_scheduler.state_dict(), target / SCHEDULER_NAME)
    trainer.state.save_to_json(str(target / TRAINER_STATE_NAME))
    return target


__all__ = ["NewHyperparameters", "save_training_state"]
