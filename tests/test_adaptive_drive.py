"""The adaptive strategy's driver over a real Optuna study with the tool's pruner composition;
trials report synthetic eval curves instead of training (milliseconds)."""

import math
import time
from dataclasses import dataclass, field

import optuna
import pytest

from tunelm.config import from_dict
from tunelm.search.adaptive import LR, RANK
from tunelm.search.budget import COST_ATTR, Budget
from tunelm.search.dimensions import config_values
from tunelm.search.pruners import make_pruner
from tunelm.search.space import dims_of, suggest
from tunelm.search.strategies import strategy_named
from tunelm.search.strategies.adaptive import DECISIONS_ATTR, adaptive_of

STEPS = (2, 4, 6, 8)
SPACE = {LR: {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
         RANK: {"type": "categorical", "choices": [8, 16]}}


def eval_curve(params):
    """Eval loss at STEPS: a bowl in log rate around 3.16e-3, rank 16 a little better."""
    d = math.log10(params[LR] / 3.16e-3)
    final = 1.0 + d * d + 0.02 * (params[RANK] != 16)
    return [(s, final * (1 + 1.0 / s)) for s in STEPS]


class Objective:
    fatal = None

    def __init__(self, dims):
        self.dims = dims

    def __call__(self, trial):
        params = suggest(trial, self.dims, trial.user_attrs.get("fixed"))
        trial.set_user_attr("params", params)
        trial.set_user_attr(COST_ATTR, 1.0)
        for step, v in eval_curve(params):
            trial.report(v, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return min(v for _, v in eval_curve(params))


@dataclass
class Stop:
    budget: Budget
    started: float = field(default_factory=time.time)

    def check(self, study):
        from tunelm.search.budget import spent

        return self.budget.exhausted(spent(study.get_trials(deepcopy=False)), 0)


@dataclass
class FakeSession:
    """What `SearchStrategy.drive` is given, over an in-memory study."""

    cfg: object
    dims: list
    study: optuna.Study
    objective: Objective
    stop: Stop
    worker: bool = False

    def stopped(self):
        return bool(self.stop.check(self.study))

    def held_values(self):
        return config_values(self.cfg, self.dims)

    def enqueue(self, params, tag, fraction=1.0, **attrs):
        self.study.enqueue_trial(params, user_attrs={"fixed": params, "tag": tag,
                                                     "fraction": fraction, **attrs})

    def run_queued(self, n):
        self.study.optimize(self.objective, n_trials=n)

    def sample(self, limit):
        from tunelm.search.budget import spent

        while not self.stopped() and spent(self.study.trials).trials < (limit or math.inf):
            self.study.optimize(self.objective, n_trials=1)


@pytest.fixture
def session(tiny_config):
    def make(trials):
        raw = tiny_config().to_dict()
        raw["train"]["learning_rate"] = 1e-3
        raw["lora"]["r"] = 16
        raw["search"].update({"space": SPACE, "strategy": "adaptive", "trials": trials,
                              "pruner": "none"})  # the curve pruner alone (on by default)
        cfg = from_dict(raw)
        dims = dims_of(cfg)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(
            direction="minimize", sampler=optuna.samplers.TPESampler(seed=0),
            pruner=make_pruner(cfg.search.pruner, 2, 8, curve=cfg.search.curve_pruner))
        return FakeSession(cfg, dims, study, Objective(dims),
                           Stop(strategy_named("adaptive").budget(cfg.search)))
    return make


def test_registered_and_built_from_the_config(session):
    s = session(6)
    strategy = adaptive_of(s.cfg, s.dims)
    assert strategy.base == {LR: 1e-3, RANK: 16}  # no warmup dimension in this space: untuned
    assert strategy.lr_bounds == (1e-4, 1e-2) and strategy.ranks == (8, 16)


def test_drive_walks_prunes_losers_records_decisions_and_hands_over(session):
    s = session(8)
    strategy_named("adaptive").drive(s)
    trials = s.study.trials
    assert len(trials) == 8  # the trial budget, spent
    assert trials[0].user_attrs["tag"] == "recommended"
    assert trials[0].params[LR] == pytest.approx(1e-3)
    assert trials[1].user_attrs["decision"].startswith("learning rate 0.00316, higher")
    assert s.study.best_trial.user_attrs["params"][LR] == pytest.approx(3.16e-3)
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned and all(t.user_attrs["prune_reason"].startswith("curve pruner:")
                          for t in pruned)
    kinds = [d["kind"] for d in s.study.user_attrs[DECISIONS_ATTR]]
    assert kinds[0] == "run" and "handover" in kinds


def test_a_budget_of_one_run_is_the_recommended_config(session):
    s = session(1)
    strategy_named("adaptive").drive(s)
    assert [t.user_attrs["tag"] for t in s.study.trials] == ["recommended"]
