"""The checks: pure functions `check_x(table) -> Finding | None`, one module per concern, with
their thresholds as named constants at the top of each module."""

from .coverage import check_eval_logged, check_train_logged
from .divergence import check_diverged
from .eval_worse import check_eval_worse
from .instability import check_grad_norm, check_loss_variation, check_spikes
from .learning_rate import check_lr_too_high, check_lr_too_low
from .overfit import check_overfit
from .progress import check_no_progress
from .underfit import check_underfit

CHECKS = (
    check_diverged, check_loss_variation, check_spikes, check_grad_norm, check_eval_worse,
    check_overfit,
    check_no_progress, check_underfit, check_lr_too_high, check_lr_too_low, check_eval_logged,
    check_train_logged,
)

__all__ = [
    "CHECKS", "check_diverged", "check_eval_logged", "check_eval_worse", "check_grad_norm", "check_loss_variation",
    "check_lr_too_high", "check_lr_too_low", "check_no_progress", "check_overfit",
    "check_spikes", "check_train_logged", "check_underfit",
]
