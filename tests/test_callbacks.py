"""The callbacks' decisions on synthetic logs, without training."""

import math
from types import SimpleNamespace

from transformers import TrainerControl

from tunelm.runner.callbacks import BestKeeper, HealthGuard


def _state(step):
    return SimpleNamespace(global_step=step)


def feed_losses(guard, losses):
    control = TrainerControl()
    for step, loss in enumerate(losses, start=1):
        guard.on_log(None, _state(step), control, logs={"loss": loss})
        if control.should_training_stop:
            return step
    return None


def test_guard_stops_on_nan():
    guard = HealthGuard()
    assert feed_losses(guard, [2.0, 1.5, float("nan"), 1.0]) == 3
    assert "loss is nan" in guard.reason


def test_guard_stops_on_explosion_not_on_noise():
    assert feed_losses(HealthGuard(), [2.0, 1.6, 1.2, 1.0, 1.3, 0.9, 1.1, 0.8, 1.2, 0.9]) is None
    guard = HealthGuard(factor=3.0)
    stopped = feed_losses(guard, [2.0, 1.5, 1.0, 0.8, 0.8, 4.0, 9.0, 12.0, 15.0])
    assert stopped is not None and guard.reason.startswith("diverged")


def test_guard_margin_protects_tiny_losses():
    # 0.01 -> 0.05 is 5x but only 0.04 nats: noise near zero, not divergence
    assert feed_losses(HealthGuard(), [1.0, 0.1, 0.02, 0.01, 0.01, 0.05, 0.06, 0.05]) is None


def test_guard_disabled_with_factor_zero():
    assert feed_losses(HealthGuard(factor=0), [1.0, 0.5, 50.0, 80.0]) is None


def test_guard_stops_on_infinite_grad_norm():
    guard = HealthGuard()
    control = TrainerControl()
    guard.on_log(None, _state(1), control, logs={"loss": 1.0, "grad_norm": math.inf})
    assert control.should_training_stop and "grad_norm" in guard.reason


def test_best_keeper_keeps_best_and_stops_after_patience(tmp_path):
    saved = []
    keeper = BestKeeper(tmp_path / "best", patience=2, threshold=0.01, save_fn=saved.append)
    control = TrainerControl()
    losses = {10: 3.0, 20: 2.0, 30: 1.5, 40: 1.495, 50: 1.7}
    for step, loss in losses.items():
        keeper.on_evaluate(None, _state(step), control, metrics={"eval_loss": loss})
        if control.should_training_stop:
            break
    # 1.495 is a new best (saved) but not an improvement larger than the threshold
    assert keeper.best_step == 40 and keeper.best_loss == 1.495
    assert len(saved) == 4
    assert keeper.stopped_early and step == 50


def test_best_keeper_without_patience_never_stops(tmp_path):
    keeper = BestKeeper(None, patience=None, threshold=0.0)
    control = TrainerControl()
    for step, loss in enumerate([1.0, 2.0, 3.0, 4.0, 5.0], start=1):
        keeper.on_evaluate(None, _state(step), control, metrics={"eval_loss": loss})
    assert not control.should_training_stop and keeper.best_step == 1
