"""The staged protocol on synthetic learning curves: no training, milliseconds."""

import math

from tunelm.search.proposals import Curve
from tunelm.search.protocol import Protocol, is_spiky, steady

BASE = {"train.learning_rate": 1e-3, "lora.r": 16, "train.warmup_ratio": 0.1}


def curve(s, final, *, spiky=False, turn_up=False, state="complete"):
    """A loss falling from 2.0 towards `final`; optionally spiky or turning up at the end."""
    train = [2.0 * (final / 2.0) ** (i / 9) for i in range(10)]
    if spiky:
        train[4] *= 1.8
        train[6] *= 1.6
    evals = [2.0 * (final / 2.0) ** (i / 3) for i in range(4)]
    if turn_up:
        evals[-1] = evals[-2] * 1.2
    if state == "failed":
        train[-1] = math.nan
    return Curve(params=dict(s.params), eval_losses=list(enumerate(evals)),
                 train_losses=list(enumerate(train)), state=state, tag=s.tag,
                 fraction=s.fraction)


def run_protocol(outcome, base=BASE):
    """Drive the protocol to the end; outcome(suggestion) -> Curve."""
    proto, history, asked = Protocol(dict(base)), [], []
    for _ in range(20):
        todo = proto.propose(history)
        if todo is None:
            return proto, history, asked
        assert todo, "a synchronous driver always has work"
        asked.append(todo)
        history += [outcome(s) for s in todo]
    raise AssertionError("the protocol did not finish")


def test_three_rates_over_one_decade_on_a_fifth_of_the_steps():
    first = Protocol(dict(BASE)).propose([])
    lrs = sorted(s.params["train.learning_rate"] for s in first)
    assert len(first) == 3 and all(s.fraction == 0.2 and s.tag == "lr" for s in first)
    assert math.isclose(lrs[2] / lrs[0], 10, rel_tol=0.01) and lrs[1] == 1e-3


def test_picks_the_steadiest_rate_not_the_fastest_drop():
    def outcome(s):
        lr = s.params["train.learning_rate"]
        if s.tag == "lr" and lr > 2e-3:
            return curve(s, 0.3, turn_up=True)  # lowest loss on the way, then overfits/unstable
        if s.tag == "lr":
            return curve(s, 0.5 if lr == 1e-3 else 0.9)
        return curve(s, 0.6 if s.tag == "rank" else 0.5)
    proto, history, asked = run_protocol(outcome)
    final = asked[-1][0]
    assert final.tag == "final" and final.fraction == 1.0
    assert final.params["train.learning_rate"] == 1e-3
    assert [len(a) for a in asked] == [3, 1, 1]  # lr, rank, final: no warmup stage


def test_keeps_double_rank_only_for_more_than_two_percent():
    def outcome(gain):
        def f(s):
            if s.tag == "rank":
                return curve(s, 0.5 * (1 - gain))
            return curve(s, 0.5 if s.params["train.learning_rate"] == 1e-3 else 0.8)
        return f
    *_, asked = run_protocol(outcome(0.05))
    assert asked[-1][0].params["lora.r"] == 32
    *_, asked = run_protocol(outcome(0.01))
    assert asked[-1][0].params["lora.r"] == 16


def test_warmup_stage_only_when_the_early_loss_was_spiky():
    def outcome(s):
        lr = s.params["train.learning_rate"]
        if s.tag == "lr":
            return curve(s, 0.5 if lr == 1e-3 else 0.8, spiky=lr == 1e-3)
        if s.tag == "warmup":
            return curve(s, 0.45)
        return curve(s, 0.6)
    _, _, asked = run_protocol(outcome)
    tags = [a[0].tag for a in asked]
    assert tags == ["lr", "rank", "warmup", "final"]
    assert [s.params["train.warmup_ratio"] for s in asked[2]] == [0.05]  # 0.1 is the base
    assert asked[-1][0].params["train.warmup_ratio"] == 0.05


def test_all_rates_diverging_moves_a_decade_lower_once():
    def outcome(s):
        if s.params["train.learning_rate"] > 5e-4:
            return curve(s, 0.5, state="failed")
        return curve(s, 0.7)
    proto, _, asked = run_protocol(outcome, {**BASE, "train.learning_rate": 1e-2})
    assert [a[0].tag for a in asked][:2] == ["lr", "lr-lower"]
    assert asked[-1][0].params["train.learning_rate"] < 5e-4
    assert "decade lower" in proto.log[0]

    def never(s):
        return curve(s, 0.5, state="failed")
    proto, _, asked = run_protocol(never)
    assert [a[0].tag for a in asked] == ["lr", "lr-lower"] and "stopping" in proto.log[-1]


def test_waits_while_a_stage_is_running():
    proto = Protocol(dict(BASE))
    first = proto.propose([])
    assert proto.propose([curve(first[0], 0.5)]) == []


def test_spikes_and_steadiness():
    assert not is_spiky([3, 2.5, 2.2, 2.0, 1.9, 1.95, 1.8])
    assert is_spiky([3, 2.5, 2.2, 2.0, 3.5, 1.9, 1.8])
    assert is_spiky([3, 2.5, 2.2, 2.0, 2.6, 1.9, 2.5])
    falling = Curve({}, [(0, 2.0), (1, 1.5), (2, 1.2)], [(i, 2 - i / 10) for i in range(10)])
    rising = Curve({}, [(0, 2.0), (1, 1.0), (2, 1.3)], [(i, 2 - i / 10) for i in range(10)])
    assert steady(falling) and not steady(rising)
