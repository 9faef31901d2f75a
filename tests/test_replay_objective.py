"""The replay harness with `search.objective: exact_match` (benchmarks/_recording.Selection):
strategies optimise and the tracker selects on the recorded exact match while the pruners still
read the eval losses, as `tunelm search` does. Synthetic recorded grids (tests of
test_search_efficiency); no training."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from _grid import LR, RANK, WARMUP  # noqa: E402
from _recording import LOSS_SELECTION, Selection, _Tracker  # noqa: E402
from _replay import Grid, replay  # noqa: E402

from tests.test_search_efficiency import REC, synthetic_record  # noqa: E402

EM = Selection("exact_match")


@pytest.fixture
def contracts():
    return Grid.from_record(synthetic_record("contracts"))


def test_selection_values_and_directions(contracts):
    run = contracts.run_of(REC)
    assert (LOSS_SELECTION.direction, EM.direction) == ("minimize", "maximize")
    assert LOSS_SELECTION.value(run) == run.best_eval_loss
    assert EM.value(run) == run.exact_match == 0.9
    diverged = next(r for r in contracts.runs.values() if r.diverged)
    assert EM.value(diverged) == -math.inf  # no score: the worst value, as goal.value_of says
    with pytest.raises(ValueError, match="objective must be eval_loss or exact_match, got 'rouge"):
        Selection("rougeL")


def test_the_tracker_keeps_the_best_by_the_objective_and_the_first_of_ties(contracts):
    low_loss = contracts.run_of({**REC, RANK: 32})  # lower eval loss, 5 points less EM
    same_em = contracts.run_of({**REC, WARMUP: 0.05})  # the same EM as REC
    assert low_loss.best_eval_loss < contracts.run_of(REC).best_eval_loss
    assert low_loss.exact_match < contracts.run_of(REC).exact_match == same_em.exact_match
    by_em, by_loss = _Tracker(contracts, "x", 0, EM), _Tracker(contracts, "x", 0)
    for t in (by_em, by_loss):
        t.add(contracts.run_of(REC), 100.0, finished_full=True)
        t.add(low_loss, 100.0, finished_full=True)
        t.add(same_em, 100.0, finished_full=True)
    assert by_em.best is contracts.run_of(REC)
    assert by_loss.best is low_loss
    assert by_em.trace.regrets[-1] == 0.0 and by_loss.trace.regrets[-1] == pytest.approx(5.0)


def test_tpe_maximises_exact_match_and_finds_what_the_loss_misses(contracts):
    """Over the whole grid's compute, TPE selecting on eval loss ends on the lowest-loss config
    (rank 32, 5 points short); selecting on exact match it ends on the best exact match."""
    by_loss = replay(contracts, "tpe", 0)
    by_em = replay(contracts, "tpe", 0, EM)
    assert by_loss.found[-1].params[RANK] == 32 and by_loss.regrets[-1] == pytest.approx(5.0)
    assert by_em.regrets[-1] == 0.0
    found = [EM.value(r) for r in by_em.found if r is not None]
    assert found == sorted(found)  # what is found only improves in the objective's direction


def test_adaptive_maximises_exact_match_and_its_pruner_still_reads_eval_losses(contracts):
    """At 5 full-run equivalents: selecting on eval loss, the walk moves to rank 32 (lower loss,
    5 points less EM); selecting on exact match it keeps the recommended config and goes on to
    the warmup. Either way the lower rate, whose eval loss trails, is stopped by the curve
    pruner (it reads losses, lower is better, whatever the study's direction)."""
    import small_budget

    low = {**REC, LR: min(contracts.learning_rates, key=lambda x: abs(x / REC[LR] - 10 ** -0.5))}
    for selection, rank, regret in ((LOSS_SELECTION, 32, 5.0), (EM, 16, 0.0)):
        trace, log = small_budget.replay_adaptive(contracts, "adaptive", 0, 5, selection)
        assert trace.found[-1].params[RANK] == rank
        assert trace.regrets[-1] == pytest.approx(regret)
        i = trace.params.index(low)
        assert trace.costs[i] - trace.costs[i - 1] < 0.5 * contracts.run_of(low).seconds / \
            contracts.total_seconds  # pruned: it cost less than half a run
    assert any(line.startswith("run: warmup ratio") for line in log)  # the EM walk's next stage


def test_the_protocol_replay_refuses_another_objective(contracts):
    with pytest.raises(ValueError, match="eval loss only"):
        replay(contracts, "protocol", 0, EM)
