from tunelm.config import TrainConfig
from tunelm.plan import plan_steps


def test_steps_from_epochs_and_batch():
    plan = plan_steps(TrainConfig(batch_size=4, grad_accum=2, epochs=2, warmup_ratio=0.1), 100)
    # 100 sequences / 4 = 25 micro-batches, /2 accumulation = 13 steps per epoch
    assert plan.steps_per_epoch == 13
    assert plan.total_steps == 26
    assert plan.effective_batch == 8
    assert plan.warmup_steps == 3
    assert plan.eval_steps == 2  # about a dozen evaluations


def test_max_steps_overrides_epochs():
    plan = plan_steps(TrainConfig(max_steps=40, epochs=5, eval_steps=10), 10)
    assert plan.total_steps == 40 and plan.eval_steps == 10


def test_wsd_phases():
    plan = plan_steps(TrainConfig(scheduler="wsd", max_steps=100, warmup_ratio=0.1,
                                  wsd_stable_end=0.8), 10)
    assert plan.scheduler == "warmup_stable_decay"
    assert plan.warmup_steps == 10
    assert plan.scheduler_kwargs["num_decay_steps"] == 20


def test_restarts_cycles():
    plan = plan_steps(TrainConfig(scheduler="cosine_with_restarts", num_cycles=3, max_steps=30), 8)
    assert plan.scheduler_kwargs == {"num_cycles": 3}
