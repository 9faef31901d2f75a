"""Population-based training: the decisions on synthetic curves (no training), the execution on
the tiny model (checkpoints through Optuna's artifact store, resumed weights and optimizer), the
worker that runs queued trials only, the report's lineage section, and the config's checks."""

from __future__ import annotations

import json
import math
import tarfile
from pathlib import Path

import optuna
import pytest

from tunelm.cli import main
from tunelm.config import from_dict
from tunelm.errors import ConfigError
from tunelm.search.pbt import PBT, MemberResult, ancestry, schedules
from tunelm.search.space import parse_space

SPACE = {"train.learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
         "train.weight_decay": {"type": "float", "low": 0.0, "high": 0.1},
         "lora.r": {"type": "categorical", "choices": [4, 8, 16]}}
START = {"train.learning_rate": 1e-3, "train.weight_decay": 0.0, "lora.r": 8}
LR = "train.learning_rate"


def make_pbt(**kw) -> PBT:
    return PBT(parse_space(SPACE), START, **{"population": 4, "generations": 3, **kw})


def finish(steps, loss_of) -> list[MemberResult]:
    """A generation's steps finished with loss `loss_of(step)` and checkpoint 'm<member>g<gen>'
    (a None loss: the member failed, no checkpoint)."""
    out = []
    for s in steps:
        loss = loss_of(s)
        out.append(MemberResult(s.member, s.generation, s.params, loss,
                                None if loss is None else f"m{s.member}g{s.generation}",
                                s.parent))
    return out


def lr_loss(step) -> float:
    """Synthetic curve: the loss is lowest at a learning rate of 1e-2."""
    return 1.0 + abs(math.log10(step.params[LR]) + 2)


# ---------------------------------------------------------------------------------------------
# Decisions on synthetic curves


def test_generation_zero_is_the_start_config_and_samples_from_the_space():
    steps = make_pbt().propose([])
    assert [s.member for s in steps] == [0, 1, 2, 3]
    assert steps[0].params == START
    dims = {d.name: d for d in parse_space(SPACE)}
    for s in steps:
        assert s.generation == 0 and s.parent is None and s.checkpoint is None
        assert all(dims[k].contains(v) for k, v in s.params.items())
    assert len({s.params[LR] for s in steps}) == 4


def test_the_bottom_quantile_copies_a_top_member_and_the_rest_continue():
    pbt = make_pbt(population=8, quantile=0.25, resample_probability=0.0)
    first = pbt.propose([])
    results = finish(first, lambda s: float(s.member))  # member 0 best, member 7 worst
    nxt = pbt.propose(results)
    by_member = {s.member: s for s in nxt}
    assert all(s.generation == 1 for s in nxt)
    for m in (6, 7):  # the bottom 25% of 8
        s = by_member[m]
        assert s.exploited and s.parent in (0, 1)
        assert s.checkpoint == f"m{s.parent}g0"
        assert s.params["lora.r"] == first[s.parent].params["lora.r"]  # inherited with weights
        assert set(s.explore) == {LR, "train.weight_decay"}
    for m in range(6):
        s = by_member[m]
        assert not s.exploited and s.parent == m and s.checkpoint == f"m{m}g0"
        assert s.params == first[m].params and s.explore == {}
    assert sum("copies member" in line for line in pbt.log) == 2


def test_perturbations_scale_by_0_8_or_1_2_within_the_bounds():
    pbt = make_pbt(resample_probability=0.0)
    dims = {d.name: d for d in parse_space(SPACE)}
    seen = set()
    for i in range(200):
        rng = __import__("random").Random(i)
        params = {LR: 0.09 if i % 2 else 2e-3, "train.weight_decay": 0.05, "lora.r": 8}
        out, how = pbt.explore(params, rng)
        assert out["lora.r"] == 8
        for name in (LR, "train.weight_decay"):
            d = dims[name]
            assert d.low <= out[name] <= d.high
            scale = float(how[name][1:])
            assert scale in (0.8, 1.2)
            expected = min(d.high, max(d.low, params[name] * scale))
            assert out[name] == pytest.approx(expected, rel=1e-3)
            seen.add((name, how[name], out[name] == d.high))
    assert (LR, "x1.2", True) in seen  # 0.09 x 1.2 is clipped to the upper bound 0.1
    assert {h for _, h, _ in seen} == {"x0.8", "x1.2"}


@pytest.mark.parametrize("probability", [0.0, 0.25, 1.0])
def test_resampling_happens_at_the_configured_rate(probability):
    pbt = make_pbt(resample_probability=probability)
    rng = __import__("random").Random(0)
    hows = []
    for _ in range(2000):
        _, how = pbt.explore(dict(START), rng)
        hows += list(how.values())
    rate = hows.count("resample") / len(hows)
    assert rate == pytest.approx(probability, abs=0.025)


def test_a_population_of_one_continues_itself_to_the_end():
    pbt = make_pbt(population=1, generations=3)
    results = []
    steps = pbt.propose(results)
    assert len(steps) == 1 and steps[0].params == START
    for g in range(3):
        results += finish(steps, lr_loss)
        steps = pbt.propose(results)
        if g < 2:
            assert len(steps) == 1 and steps[0].parent == 0 and steps[0].params == START
            assert steps[0].checkpoint == f"m0g{g}"
    assert steps is None


def test_a_quantile_that_selects_nobody_leaves_everyone_but_the_failed():
    pbt = make_pbt(population=3, quantile=0.25)  # 0.25 x 3 members: nobody
    first = pbt.propose([])
    nxt = pbt.propose(finish(first, lambda s: float(s.member)))
    assert not any(s.exploited for s in nxt)
    # a member that failed has no state to continue from: it copies the best one
    nxt = pbt.propose(finish(first, lambda s: None if s.member == 1 else float(s.member)))
    by_member = {s.member: s for s in nxt}
    assert by_member[1].exploited and by_member[1].parent == 0
    assert by_member[1].checkpoint == "m0g0"
    assert not by_member[0].exploited and not by_member[2].exploited


def test_waits_for_a_generation_and_stops_when_every_member_failed():
    pbt = make_pbt()
    first = pbt.propose([])
    assert pbt.propose(finish(first[:3], lr_loss)) == []  # one member still running
    assert pbt.propose(finish(first, lambda s: None)) is None
    assert "every member failed" in pbt.log[-1]


def test_lineage_and_schedules_after_several_generations():
    pbt = make_pbt(population=6, generations=5, quantile=0.34, seed=3)
    results, steps = [], pbt.propose([])
    exploits = 0
    while steps:
        for s in steps:
            if s.generation:  # every step starts from its parent's state of the last generation
                assert s.checkpoint == f"m{s.parent}g{s.generation - 1}"
            exploits += s.exploited
        results += finish(steps, lr_loss)
        steps = pbt.propose(results)
    assert steps is None and len(results) == 30 and exploits == 8  # 2 of 6, in 4 generations
    plans = schedules(results)
    assert sorted(plans) == list(range(6)) and all(len(v) == 5 for v in plans.values())
    for m, rows in plans.items():
        assert [r.generation for r in rows] == [0, 1, 2, 3, 4]  # its schedule, in order
        chain = ancestry(results, m, 4)
        assert chain[-1] == (m, 4) and [g for _, g in chain] == [0, 1, 2, 3, 4]
        for (pm, pg), (cm, cg) in zip(chain, chain[1:]):
            child = next(r for r in results if (r.member, r.generation) == (cm, cg))
            assert child.parent == pm
            parent = next(r for r in results if (r.member, r.generation) == (pm, pg))
            if child.parent == cm:  # continued: the same values
                assert child.params == parent.params
            else:  # exploited: the parent's rank, its rate scaled or resampled
                assert child.params["lora.r"] == parent.params["lora.r"]
    # exploiting pulls the population towards the good rate: the best loss improves
    best = [min(r.loss for r in results if r.generation == g) for g in range(5)]
    assert best[-1] <= best[0]


def test_the_same_records_give_the_same_generation():
    a, b = make_pbt(seed=7), make_pbt(seed=7)
    first = a.propose([])
    assert first == b.propose([])
    results = finish(first, lr_loss)
    assert a.propose(results) == b.propose(results)
    assert make_pbt(seed=8).propose([]) != first


# ---------------------------------------------------------------------------------------------
# Execution: the worker path on an in-memory study, without training


class FakeRunner:
    """Records the trials it ran; sets the study's done flag after `last` of them."""

    fatal = None

    def __init__(self, last: int):
        self.ran, self.last = [], last

    def __call__(self, trial):
        from tunelm.search.pbt_run import DONE_ATTR

        self.ran.append(trial.user_attrs["pbt"]["member"])
        if len(self.ran) == self.last:
            trial.study.set_user_attr(DONE_ATTR, True)
        return 1.0


class NoStop:
    reason = None

    def check(self, study):
        return None


def test_a_worker_runs_queued_member_generations_only():
    from tunelm.search.pbt_run import EnqueuedOnly, run_pbt

    study = optuna.create_study()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # nothing queued: a sampled trial is closed unrun, the objective never called
    runner = FakeRunner(last=2)
    study.optimize(EnqueuedOnly(runner), n_trials=1, catch=(Exception,))
    assert runner.ran == [] and study.trials[0].user_attrs["not_run"]
    for m in (0, 1):
        study.enqueue_trial({}, user_attrs={"pbt": {"member": m, "generation": 0}, "fixed": {}})
    cfg = from_dict({"data": {"task": "contracts"}, "search": {"strategy": "pbt"}})
    run_pbt(study, cfg, runner, [], NoStop(), [], Path("."), worker=True, poll=0.01)
    assert runner.ran == [0, 1]
    assert len(study.trials) == 3  # the unrun one and the two queued: nothing sampled


def test_collect_reads_finished_pending_and_retried_member_generations():
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    from tunelm.search.pbt_run import collect

    study = optuna.create_study()

    def add(member, state, loss=None, ckpt=None, system=None):
        attrs = {"pbt": {"member": member, "generation": 0, "parent": None}, "params": {LR: 1e-3}}
        if loss is not None:
            attrs.update(final_eval_loss=loss, pbt_checkpoint=ckpt)
        study.add_trial(create_trial(
            state=state, value=loss if state == TrialState.COMPLETE else None,
            params={LR: 1e-3} if state != TrialState.WAITING else {},
            distributions={LR: FloatDistribution(1e-4, 1e-1, log=True)}
            if state != TrialState.WAITING else {},
            user_attrs=attrs, system_attrs=system or {}))

    add(0, TrialState.COMPLETE, 1.5, "a0")
    add(1, TrialState.PRUNED)  # diverged: finished, no state
    add(2, TrialState.FAIL)  # its worker died ...
    add(2, TrialState.WAITING, system={"failed_trial": 2})  # ... and its retry is queued
    add(3, TrialState.RUNNING)
    results, pending, known = collect(study)
    by_member = {r.member: r for r in results}
    assert by_member[0].loss == 1.5 and by_member[0].checkpoint == "a0"
    assert by_member[1].loss is None and by_member[1].checkpoint is None
    assert 2 not in by_member and pending == {(2, 0), (3, 0)}
    assert known == {(m, 0) for m in range(4)}


# ---------------------------------------------------------------------------------------------
# End to end on the tiny model


class StartState:
    """Captures, per trial directory, the adapter weights, optimizer step and learning rates at
    the start of training (after a resume has loaded its checkpoint)."""

    def __init__(self):
        self.at: dict[str, dict] = {}

    def __call__(self):
        from transformers import TrainerCallback

        owner = self

        class Capture(TrainerCallback):
            def on_train_begin(self, args, state, control, model=None, optimizer=None, **kw):
                from peft import get_peft_model_state_dict
                from safetensors.torch import load_file

                steps = [float(s["step"]) for s in optimizer.state.values() if "step" in s]
                start = Path(args.output_dir).parent / "pbt" / "start"  # the resumed state
                resumed = start / "adapter_model.safetensors"
                owner.at[Path(args.output_dir).parent.name] = {
                    "resumed": load_file(resumed) if resumed.exists() else None,
                    "weights": {k: v.detach().clone()
                                for k, v in get_peft_model_state_dict(model).items()},
                    "optimizer_step": max(steps) if steps else 0.0,
                    "global_step": state.global_step,
                    "lrs": [g["initial_lr"] for g in optimizer.param_groups],
                }

        return Capture()


def test_pbt_end_to_end_on_the_tiny_model(tiny_config, tmp_path):
    import torch
    from safetensors.torch import load_file

    from tunelm.report.data import collect
    from tunelm.report.html import render
    from tunelm.search import run_search
    from tunelm.search.pbt_run import artifact_store

    raw = tiny_config(train={"eval_steps": 2}).to_dict()
    raw["search"].update({
        "strategy": "pbt", "pbt_population": 4, "pbt_generations": 3,
        "pbt_generation_steps": 3, "pbt_quantile": 0.25, "seed": 1,
        "space": {LR: {"type": "float", "low": 1e-4, "high": 3e-2, "log": True},
                  "lora.r": {"type": "categorical", "choices": [4, 8]}}})
    cfg = from_dict(raw)
    start = StartState()
    out = tmp_path / "study"
    result = run_search(cfg, out, callbacks=[start()])
    assert result.stop_reason == "pbt finished"
    assert [t["state"] for t in result.trials] == ["COMPLETE"] * 12

    study = optuna.load_study(study_name="study", storage=f"sqlite:///{out / 'study.db'}")
    trials = {t.number: t for t in study.trials}
    # the last generation's checkpoints stay; the earlier ones were deleted once used
    last = [t for t in trials.values() if t.user_attrs["pbt"]["generation"] == 2]
    assert sorted(p.name for p in (out / "artifacts").iterdir()) == sorted(
        t.user_attrs["pbt_checkpoint"] for t in last)
    store = artifact_store(study, out)
    exploited = 0
    for t in trials.values():
        info = t.user_attrs["pbt"]
        g = info["generation"]
        seen = start.at[f"{t.number:04d}"]
        assert (info["start_step"], info["end_step"]) == (3 * g, 3 * g + 3)
        assert t.user_attrs["final_step"] == 3 * g + 3
        assert seen["global_step"] == 3 * g  # the step counter continued
        assert seen["optimizer_step"] == 3 * g  # and Adam's moments with it
        # the child's own learning rate, not the parent's saved one
        assert seen["lrs"][0] == pytest.approx(t.user_attrs["params"][LR])
        if g == 0:
            assert info["checkpoint"] is None
            continue
        parent = next(p for p in trials.values() if p.user_attrs["pbt"]["member"] ==
                      info["parent"] and p.user_attrs["pbt"]["generation"] == g - 1)
        assert info["checkpoint"] == parent.user_attrs["pbt_checkpoint"]
        exploited += info["parent"] != info["member"]
        # the weights at the start of the generation are the parent's saved ones
        saved = seen["resumed"]
        assert saved is not None and saved.keys() == seen["weights"].keys()
        assert all(torch.equal(saved[k], seen["weights"][k]) for k in saved)
    assert exploited == 2  # one bottom member in each of generations 1 and 2
    # a final checkpoint holds the state at the end of the run, and loads
    tar = tmp_path / "final.tar"
    optuna.artifacts.download_artifact(artifact_store=store, file_path=str(tar),
                                       artifact_id=last[0].user_attrs["pbt_checkpoint"])
    with tarfile.open(tar) as fh:
        fh.extractall(tmp_path / "final", filter="data")
    state = json.loads((tmp_path / "final" / "trainer_state.json").read_text())
    assert state["global_step"] == 9
    assert load_file(tmp_path / "final" / "adapter_model.safetensors")

    # metrics continue the parent's steps; the schedule is the whole run's (9 steps), not a restart
    g2 = next(t for t in trials.values() if t.user_attrs["pbt"]["generation"] == 2)
    rows = [json.loads(x) for x in (Path(g2.user_attrs["trial_dir"]) / "metrics.jsonl")
            .read_text().splitlines()]
    assert [r["step"] for r in rows if "train_loss" in r] == [7, 8, 9]
    result_json = json.loads((Path(g2.user_attrs["trial_dir"]) / "result.json").read_text())
    assert result_json["plan"]["total_steps"] == 9
    # every member-generation runs at its own peak rate on one schedule of the whole run:
    # logged rate / the trial's rate is the same function of the step in all 12 trials
    factor: dict[int, float] = {}
    for t in trials.values():
        for r in (json.loads(x) for x in (Path(t.user_attrs["trial_dir"]) / "metrics.jsonl")
                  .read_text().splitlines()):
            if r.get("learning_rate") is not None:
                f = r["learning_rate"] / t.user_attrs["params"][LR]
                assert f == pytest.approx(factor.setdefault(r["step"], f), rel=1e-4), r
    assert sorted(factor) == list(range(1, 10)) and factor[9] < factor[5] < factor[2]

    data = collect(out)
    assert len(data.lineage) == 12 and data.strategy == "pbt"
    assert sum(c.parent not in (None, c.member) for c in data.lineage) == 2
    html = render(data, [])
    assert 'id="pbt-lineage"' in html and html.count("← member") == 2
    assert "(learning_rate x" in html or "(learning_rate resample" in html


def test_a_worker_process_joins_a_pbt_study(tiny_config, tmp_path):
    """`tunelm worker` in another process runs some of the queued member-generations; the
    lineage is the same one study's, and the worker leaves when the coordinator is done."""
    import os
    import subprocess
    import sys

    from tunelm.search import open_study, run_search

    raw = tiny_config(train={"eval_steps": 3}).to_dict()
    # the poll interval is the study's: the worker reads it from the stored config
    raw["search"].update({"strategy": "pbt", "pbt_population": 4, "pbt_generations": 3,
                          "pbt_generation_steps": 6, "pbt_poll_seconds": 0.5})
    cfg = from_dict(raw)
    out = tmp_path / "study"
    open_study(cfg, out)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "tunelm", "-q", "worker", "--storage",
         f"sqlite:///{out / 'study.db'}", "--study", "study", "--out", str(out)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        result = run_search(cfg, out)
        log, _ = worker.communicate(timeout=120)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, log
    assert [t["state"] for t in result.trials] == ["COMPLETE"] * 12
    study = optuna.load_study(study_name="study", storage=f"sqlite:///{out / 'study.db'}")
    ran_by = {t.user_attrs["worker"] for t in study.trials}
    assert len(ran_by) == 2, ran_by  # the coordinator and the worker both ran trials
    keys = sorted((t.user_attrs["pbt"]["generation"], t.user_attrs["pbt"]["member"])
                  for t in study.trials)
    assert keys == [(g, m) for g in range(3) for m in range(4)]


def test_resume_from_keeps_every_current_behaviour_without_it(tiny_config, tmp_path):
    """A plain run and one that saves its state end the same: saving changes nothing."""
    from tunelm.runner import run_trial

    cfg = tiny_config(train={"max_steps": 4, "eval_steps": 2})
    a = run_trial(cfg, tmp_path / "a", progress=False)
    b = run_trial(cfg, tmp_path / "b", progress=False, save_state_to=tmp_path / "state")
    assert a["final_eval_loss"] == pytest.approx(b["final_eval_loss"], rel=1e-6)
    assert {"adapter_model.safetensors", "optimizer.pt", "scheduler.pt",
            "trainer_state.json"} <= {p.name for p in (tmp_path / "state").iterdir()}


# ---------------------------------------------------------------------------------------------
# Config checks and the command line


def test_pbt_settings_are_validated_together():
    with pytest.raises(ConfigError) as err:
        from_dict({"search": {"strategy": "pbt", "pbt_population": 0, "pbt_quantile": 0.7,
                              "pbt_resample_probability": 1.5, "workers": 2}})
    text = str(err.value)
    assert "search.pbt_population must be > 0, got 0" in text
    assert "search.pbt_quantile must be in [0.0, 0.5], got 0.7" in text
    assert "search.pbt_resample_probability must be in [0.0, 1.0], got 1.5" in text
    assert "search.workers 2 does not apply to the pbt strategy" in text


def test_cli_rejects_bad_pbt_settings(capsys, tmp_path):
    code = main(["-q", "search", "presets/tiny.yaml", "--strategy", "pbt", "--out",
                 str(tmp_path / "s"), "--set", "search.pbt_generation_steps=-3"])
    err = capsys.readouterr().err
    assert code == 2
    assert "search.pbt_generation_steps must be > 0, got -3" in err
    assert not (tmp_path / "s").exists()
    assert main(["-q", "search", "presets/tiny.yaml", "--strategy", "pbt", "--dry-run",
                 "--set", "search.pbt_population=3"]) == 0
    assert "plan: 3 members x 3 generations of 10 steps: 9 trials" in capsys.readouterr().out
