"""The search-efficiency replay harness (benchmarks/_replay.py, _report.py) on synthetic recorded
grids: cost accounting, what counts as found, regret in both units, each strategy's mechanics,
and the script's bad inputs. No training."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from _grid import LR, RANK, WARMUP, grid_params, key_of, lr_values  # noqa: E402
from _replay import Grid, Run, Trace, replay, replay_protocol  # noqa: E402

REC = {LR: 1e-3, RANK: 16, WARMUP: 0.1}
STEPS, EVERY = 20, 4


def synthetic_run(p: dict, task: str) -> dict:
    """A smooth curve whose floor is lowest at the recommended rate and r=32; the highest rate
    diverges at step 8."""
    distance = abs(math.log10(p[LR] / REC[LR]))
    floor = (0.05 if task == "contracts" else 2.0) * (1 + 0.2 * distance) * (
        0.99 if p[RANK] == 32 else 1.0) * (1.0 if p[WARMUP] == 0.1 else 1.003)
    speed = 0.05 + 0.3 * p[LR] / REC[LR]
    diverged = p[LR] == max(lr_values(REC[LR]))
    last = 8 if diverged else STEPS
    evals = [[s, round(floor + 2.0 * math.exp(-speed * s), 5)] for s in range(EVERY, last + 1, EVERY)]
    train = [[s, round(floor + 2.2 * math.exp(-speed * s), 5), 1.0] for s in range(1, last + 1)]
    em = None
    if task == "contracts" and not diverged:
        em = round(max(0.0, 0.9 - 0.3 * distance - (0.05 if p[RANK] == 32 else 0.0)), 3)
    return {"key": key_of(p), "params": p, "planned_steps": STEPS, "final_step": last,
            "stop_reason": "diverged" if diverged else "completed",
            "best_eval_loss": min(v for _, v in evals), "best_step": None, "exact_match": em,
            "seconds": 100.0 + (10.0 if p[RANK] == 32 else 0.0) if not diverged else 40.0,
            "evals": evals, "train": train}


def synthetic_record(task: str = "docstrings") -> dict:
    return {"task": task, "recommended": REC,
            "cap": {"steps": STEPS, "eval_steps": EVERY},
            "grid": {"learning_rates": lr_values(REC[LR]), "ranks": [16, 32],
                     "warmups": [0.05, 0.1]},
            "runs": [synthetic_run(p, task) for p in grid_params(REC)]}


@pytest.fixture
def grid():
    return Grid.from_record(synthetic_record())


def test_the_grid_holds_the_protocols_points_and_its_decade_lower_retry():
    from tunelm.search.protocol import Protocol

    proto = Protocol(dict(REC))
    lrs = set(lr_values(REC[LR]))
    assert set(proto._lr_points(REC[LR])) <= lrs
    assert set(proto._lr_points(REC[LR] / 10)) <= lrs
    assert len(grid_params(REC)) == 24


def test_an_incomplete_grid_is_refused():
    data = synthetic_record()
    data["runs"] = data["runs"][:5]
    with pytest.raises(ValueError, match="holds 5 of its 24 runs"):
        Grid.from_record(data)


def test_regret_relative_in_eval_loss_and_in_exact_match_points(grid):
    best = grid.run_of({LR: 1e-3, RANK: 32, WARMUP: 0.1})
    assert grid.regret(best) == 0.0
    other = grid.run_of({LR: 1e-3, RANK: 16, WARMUP: 0.1})
    expected = 100 * (other.best_eval_loss - best.best_eval_loss) / best.best_eval_loss
    assert grid.regret(other) == pytest.approx(expected)
    assert grid.regret(None) == math.inf

    em = Grid.from_record(synthetic_record("contracts"))
    assert em.unit == "points"
    # the best exact match (0.9) is r=16 at the recommended rate; r=32 there scores 0.85
    assert em.regret(em.run_of({LR: 1e-3, RANK: 32, WARMUP: 0.1})) == pytest.approx(5.0)


def test_cost_is_seconds_times_the_share_of_recorded_steps_read():
    run = Run({}, ((4, 1.0),), (), seconds=100.0, final_step=20, stop_reason="completed",
              best_eval_loss=1.0, exact_match=None)
    assert run.cost_to(4) == pytest.approx(20.0)
    assert run.cost_to(40) == pytest.approx(100.0)  # never more than the whole run


def test_grid_search_spends_exactly_the_grid_and_ends_at_zero_regret(grid):
    trace = replay(grid, "grid", seed=3)
    assert trace.trials == 24 and trace.repeats == 0
    assert trace.costs[-1] == pytest.approx(1.0)
    assert trace.regrets[-1] == 0.0
    other = replay(grid, "grid", seed=4)
    assert other.regrets != trace.regrets or other.costs != trace.costs  # shuffled by the seed


def test_tpe_as_the_tool_runs_it_tries_the_recommended_config_first(grid):
    trace = replay(grid, "tpe-nopruning", seed=0)
    rec_run = grid.run_of(REC)
    assert trace.costs[0] == pytest.approx(rec_run.seconds / grid.total_seconds)
    assert trace.regrets[0] == pytest.approx(grid.regret(rec_run))
    assert trace.costs[-1] >= 1.0  # ran until the grid's compute was spent


def test_pruning_charges_only_the_steps_read_and_never_counts_as_found(grid):
    sh = replay(grid, "tpe+sh", seed=1)
    plain = replay(grid, "tpe-nopruning", seed=1)
    assert sh.pruned > 0
    assert sh.trials > plain.trials  # pruned trials are cheaper, so more fit in the budget
    # with no pruner, exactly the runs of the diverging rate are pruned (the tool raises
    # TrialPruned for a diverged run)
    top = max(grid.learning_rates)
    assert plain.pruned == sum(p[LR] == top for p in plain.params)
    spent = sum(grid.run_of(p).seconds for p in plain.params)
    assert plain.costs[-1] == pytest.approx(spent / grid.total_seconds)
    assert sh.costs[-1] < sum(grid.run_of(p).seconds for p in sh.params) / grid.total_seconds


def test_a_diverged_run_is_never_the_result():
    # a grid where the diverging rate has the lowest loss before it diverges
    data = synthetic_record()
    for r in data["runs"]:
        if r["stop_reason"] == "diverged":
            r["evals"] = [[4, 0.1], [8, 0.05]]
            r["best_eval_loss"] = 0.05
    grid = Grid.from_record(data)
    for seed in range(3):
        trace = replay(grid, "random", seed)
        assert min(trace.regrets) >= 0.0  # 0.05 would be a negative regret against the grid


def test_the_protocol_reads_prefixes_then_runs_the_final_config_in_full(grid):
    trace = replay_protocol(grid)
    probe_steps = math.ceil(STEPS * 0.2)
    # three lr probes and the rank probe (the synthetic train loss is smooth: no warmup stage)
    # at 20% of the steps, then the final run
    assert trace.trials == 5
    assert all(not math.isfinite(r) for r in trace.regrets[:4])  # probes are never a result
    assert math.isfinite(trace.regrets[-1])
    probes = [grid.run_of({**REC, LR: lr}) for lr in (3.16e-4, 1e-3, 3.16e-3)]
    spent = sum(r.cost_to(probe_steps) for r in probes)
    assert trace.costs[2] == pytest.approx(spent / grid.total_seconds)
    assert trace.costs[-1] < 0.2
    assert replay_protocol(grid, seed=7).regrets == trace.regrets  # deterministic


def test_regret_at_a_compute_share_and_first_within():
    t = Trace("x", 0, costs=[0.1, 0.3, 0.6], regrets=[math.inf, 2.0, 0.5])
    assert t.regret_at(0.05) == math.inf
    assert t.regret_at(0.3) == 2.0
    assert t.regret_at(1.0) == 0.5
    assert t.first_within(1.0) == 0.6
    assert t.first_within(0.1) == math.inf


def test_summary_table_and_target(grid):
    from _report import replay_all, table_markdown

    results, traces = replay_all({"docstrings": grid}, seeds=3,
                                 strategies=("protocol", "grid", "default-tpe", "tpe"))
    res = results["docstrings"]
    assert res["strategies"]["grid"]["median_regret"]["1.00"] == 0.0
    assert set(res["target"]) == {"tpe", "protocol"}
    t = res["target"]["protocol"]
    assert t["met"] == (t["within_15pct"] and t["at_most_half_of_default_tpe"])
    md = table_markdown(results)
    assert "| protocol |" in md and "| default-tpe |" in md


def test_the_script_refuses_bad_tasks_and_missing_recordings(tmp_path, monkeypatch, capsys):
    import search_efficiency

    assert search_efficiency.main(["--replay-only", "--tasks", "poems"]) == 2
    assert "--tasks must name some of docstrings, contracts, got 'poems'" in capsys.readouterr().err
    assert search_efficiency.main(["--replay-only", "--seeds", "0"]) == 2
    assert "--seeds must be >= 1, got 0" in capsys.readouterr().err
    monkeypatch.setattr(search_efficiency, "DATA", tmp_path)
    assert search_efficiency.main(["--replay-only", "--tasks", "contracts"]) == 2
    err = capsys.readouterr().err
    assert "no recording at" in err and "grid-contracts.json" in err
    incomplete = synthetic_record("contracts")
    incomplete["runs"] = incomplete["runs"][:3]
    (tmp_path / "grid-contracts.json").write_text(json.dumps(incomplete))
    assert search_efficiency.main(["--replay-only", "--tasks", "contracts"]) == 2
    assert "holds 3 of its 24 runs" in capsys.readouterr().err


def test_replay_only_writes_the_table_json_and_plot(tmp_path, monkeypatch):
    import search_efficiency

    monkeypatch.setattr(search_efficiency, "DATA", tmp_path)
    for task in ("docstrings", "contracts"):
        (tmp_path / f"grid-{task}.json").write_text(json.dumps(synthetic_record(task)))
    assert search_efficiency.main(["--replay-only", "--seeds", "2"]) == 0
    data = json.loads((tmp_path / "search_efficiency.json").read_text())
    assert set(data) == {"docstrings", "contracts"}
    assert data["contracts"]["unit"] == "points"
    assert (tmp_path / "search_efficiency.png").stat().st_size > 10_000
    assert "| tpe+sh |" in (tmp_path / "search_efficiency.md").read_text()


def test_a_trace_rescored_in_eval_loss_matches_a_replay_counted_that_way():
    import dataclasses

    points = Grid.from_record(synthetic_record("contracts"))
    relative = dataclasses.replace(points, unit="relative")
    for name in ("tpe", "protocol"):
        trace = replay(points, name, seed=2)
        assert trace.rescored(relative).regrets == replay(relative, name, seed=2).regrets
        assert trace.rescored(relative).regrets != trace.regrets


def test_every_replay_is_reproducible_from_its_seed(grid):
    for name in ("tpe", "tpe+sh", "random", "grid"):
        assert replay(grid, name, seed=5).regrets == replay(grid, name, seed=5).regrets
