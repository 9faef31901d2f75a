"""The budget-aware adaptive strategy on synthetic outcomes: no training, milliseconds."""

import math

import pytest

from tunelm.search.adaptive import (
    HANDOVER,
    LR,
    RANK,
    RUN,
    STOP,
    WARMUP,
    Adaptive,
    Outcome,
    runs_left,
)

BASE = {LR: 1e-3, RANK: 16, WARMUP: 0.1}


def make(**kw):
    return Adaptive(dict(BASE), lr_bounds=(1e-4, 1e-2), ranks=(8, 16, 32),
                    warmup_bounds=(0.03, 0.1), **kw)


def landscape(best_lr=3.16e-3, best_rank=32, best_warmup=0.1):
    """A synthetic objective: a bowl in log learning rate, a little better at `best_rank` and
    `best_warmup`; rates more than a decade above the best diverge."""
    def outcome(params):
        d = math.log10(params[LR] / best_lr)
        if d > 1.01:
            return Outcome(params, "failed")
        value = 2.0 + d * d + 0.01 * (params[RANK] != best_rank)
        value += 0.005 * (abs(params[WARMUP] - best_warmup) > 1e-9)
        return Outcome(params, "complete", value)
    return outcome


def drive(strategy, outcome, budget=None, cost=lambda o: 1.0):
    """Run the strategy to its end; returns (history, decisions)."""
    history, decisions, spent = [], [], 0.0
    for _ in range(60):
        d = strategy.decide(history, None if budget is None else budget - spent)
        decisions.append(d)
        if d.kind != RUN:
            return history, decisions
        o = outcome(d.params)
        history.append(Outcome(o.params, o.state, o.value, d.tag))
        spent += cost(o)
    raise AssertionError("the strategy did not end")


def test_the_recommended_config_first():
    d = make().decide([])
    assert d.kind == RUN and d.params == BASE and d.tag == "recommended"


def test_rates_on_both_sides_before_the_rank():
    s = make()
    history = [Outcome(BASE, "complete", 2.0)]
    first = s.decide(history)
    assert (first.tag, first.params[LR]) == ("lr", 3.16e-3)
    history.append(Outcome(first.params, "pruned"))
    second = s.decide(history)
    assert (second.tag, second.params[LR]) == ("lr", 3.16e-4)
    history.append(Outcome(second.params, "pruned"))
    third = s.decide(history)  # the rate is settled: now the rank, up first
    assert third.tag == "rank" and third.params == {**BASE, RANK: 32}


def test_a_better_rate_becomes_the_centre_and_the_walk_goes_on_that_way():
    s = make()
    history = [Outcome(BASE, "complete", 2.0), Outcome({**BASE, LR: 3.16e-4}, "complete", 1.9)]
    d = s.decide(history)  # lower won: go on lowering before anything else
    assert (d.tag, d.params[LR]) == ("lr", 1e-4)


def test_walks_to_the_optimum_of_a_synthetic_landscape_then_hands_over():
    s = make()
    history, decisions = drive(s, landscape())
    best = s.incumbent(history)
    assert best.params == {LR: 3.16e-3, RANK: 32, WARMUP: 0.1}
    assert decisions[-1].kind == HANDOVER and "every neighbour" in decisions[-1].why
    tags = [o.tag for o in history]
    assert tags[0] == "recommended" and tags.index("rank") > tags.index("lr")
    assert len(s.log) == len(decisions)  # every decision recorded, with its reason
    # no configuration twice, nothing outside the space
    keys = [tuple(sorted(o.params.items())) for o in history]
    assert len(keys) == len(set(keys))
    assert all(1e-4 <= o.params[LR] <= 1e-2 and 0.03 <= o.params[WARMUP] <= 0.1 for o in history)


def test_stops_when_the_budget_cannot_pay_a_full_run():
    s = make()
    assert s.decide([], runs_left=0.7).kind == STOP
    history, decisions = drive(make(), landscape(), budget=2.5)
    assert len(history) == 2  # 1 + 1 spent, 0.5 left
    assert decisions[-1].kind == STOP and "0.50 full runs" in decisions[-1].why


def test_a_cheap_pruned_neighbour_leaves_room_for_more():
    pruned_is_cheap = lambda o: 1.0 if o.state == "complete" else 0.3  # noqa: E731
    only_the_base_finishes = lambda p: (Outcome(p, "complete", 2.0) if p == BASE  # noqa: E731
                                        else Outcome(p, "pruned"))
    history, decisions = drive(make(), only_the_base_finishes, budget=3.0, cost=pruned_is_cheap)
    # 1 + 0.3 + 0.3 + 0.3 (rank 32) + 0.3 (rank 8) = 2.2 spent; 0.8 left cannot pay a run
    assert [o.tag for o in history] == ["recommended", "lr", "lr", "rank", "rank"]
    assert decisions[-1].kind == STOP


def test_a_failed_recommendation_tries_a_lower_rate_first():
    s = make()
    d = s.decide([Outcome(BASE, "failed")])
    assert (d.tag, d.params[LR]) == ("lr", 3.16e-4)


def test_maximized_objective_keeps_the_highest():
    s = make(direction="maximize")
    history = [Outcome(BASE, "complete", 0.5), Outcome({**BASE, LR: 3.16e-3}, "complete", 0.8)]
    assert s.incumbent(history).params[LR] == 3.16e-3
    assert make().incumbent(history).params[LR] == 1e-3


def test_untuned_rank_and_warmup_are_left_alone():
    s = Adaptive({LR: 1e-3}, lr_bounds=(1e-4, 1e-2))
    history, decisions = drive(s, lambda p: Outcome(p, "complete", abs(math.log10(p[LR] / 1e-3))))
    assert [o.tag for o in history] == ["recommended", "lr", "lr"]
    assert decisions[-1].kind == HANDOVER


def test_runs_left_is_the_tightest_bound():
    assert runs_left(100.0) is None
    assert runs_left(100.0, trials_left=7) == 7
    assert runs_left(100.0, trials_left=7, wall_seconds_left=350.0) == 3.5
    assert runs_left(None, device_seconds_left=350.0) is None
    with pytest.raises(ValueError, match="run_seconds"):
        runs_left(0.0, trials_left=1)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="direction"):
        make(direction="up")
    with pytest.raises(ValueError, match="train.learning_rate"):
        Adaptive({RANK: 16}, lr_bounds=(1e-4, 1e-2))
