"""tunelm report: the report's data from a real tiny-model study, the files it writes, the CLI.

The study (built once for this module, about 5 s) is a 3 x 2 grid over learning rate and weight
decay with full fine-tuning and no gradient clipping, so the learning rate 0.9 blows up and the
median pruner stops at least one trial: every state the report draws is there.
"""

from __future__ import annotations

import math
import re
import sys
import types
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState, create_trial

from tunelm.cli import main
from tunelm.config import from_dict, load_config
from tunelm.report import collect, write_report
from tunelm.report.charts import build
from tunelm.report.data import (
    Axis,
    commands,
    history,
    importance_of,
    trial_state,
    verdict_of,
)

from .conftest import arithmetic_rows, write_jsonl

optuna.logging.set_verbosity(optuna.logging.WARNING)
LRS = [0.001, 0.03, 0.9]  # the grid's three log-spaced rates from 1e-3 to 0.9


def make_study(root: Path) -> Path:
    """A finished 6-trial tiny-model study in `root/study`; returns the study directory."""
    from tunelm.search import run_search

    train = write_jsonl(root / "data" / "train.jsonl", arithmetic_rows(64, 0))
    evals = write_jsonl(root / "data" / "eval.jsonl", arithmetic_rows(16, 1))
    cfg = from_dict({
        "model": {"name": "tiny", "precision": "fp32", "method": "full"},
        "data": {"train": str(train), "eval": str(evals), "max_length": 64},
        "train": {"learning_rate": 3e-3, "batch_size": 8, "max_steps": 12, "eval_steps": 2,
                  "warmup_ratio": 0.0, "max_grad_norm": 0.0, "scheduler": "constant_with_warmup",
                  "early_stopping_patience": None},
        "eval": {"metric": "json", "max_examples": 4, "max_new_tokens": 8},
        "search": {"strategy": "grid", "grid_points": 3, "pruner": "median", "curve_pruner": False,
                   "trials": None,
                   "space": {"train.learning_rate": {"type": "float", "low": 1e-3, "high": 0.9,
                                                     "log": True},
                             "train.weight_decay": {"type": "categorical", "choices": [0.0, 0.1]}}},
    })
    run_search(cfg, root / "study")
    return root / "study"


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory) -> Path:
    return make_study(tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def data(study_dir):
    return collect(study_dir)


def test_collect_reads_every_trial_with_its_state(data):
    assert data.study_name == "study" and data.direction == "minimize"
    assert len(data.rows) == 6 and sum(data.counts.values()) == 6
    states = [r.state for r in data.rows]
    assert states.count("complete") >= 2
    assert {"pruned", "diverged"} & set(states), states  # the report has something to mark
    for r in data.rows:
        assert r.params["train.learning_rate"] in LRS
        assert r.cost_seconds is not None and r.cost_seconds > 0
        assert (r.state == "complete") == (r.reason == "")  # stopped trials say why
        if r.state == "diverged":
            assert r.reason.startswith(("diverged", "loss is", "grad_norm is"))


def test_best_trial_config_and_regret(data, study_dir):
    complete = [r for r in data.rows if r.state == "complete"]
    best = min(complete, key=lambda r: r.value)
    assert data.best.number == best.number and data.best.value == pytest.approx(best.value)
    assert best.relative_regret == 0.0
    for r in complete:
        assert r.relative_regret == pytest.approx((r.value - best.value) / best.value)
    cfg = from_dict(yaml.safe_load(data.best.config_yaml))
    assert cfg.train.learning_rate == best.params["train.learning_rate"]
    assert cfg.train.weight_decay == best.params["train.weight_decay"]
    assert data.best.commands == [f"tunelm train {study_dir / 'best.yaml'} --out runs/best",
                                  f"tunelm export {study_dir} --to trl"]


def test_curves_history_and_learning_rate_points(data):
    by_number = {c.number: c for c in data.curves}
    for r in data.rows:
        c = by_number[r.number]
        assert c.steps == sorted(c.steps) and all(math.isfinite(v) for v in c.losses)
        if r.state == "complete":
            assert c.steps == [2, 4, 6, 8, 10, 12]
            assert r.best_eval_loss == pytest.approx(min(c.losses))
        else:
            assert c.steps[-1] < 12 and c.state == r.state
    best_so_far = [p.best_so_far for p in data.history if p.best_so_far is not None]
    assert best_so_far == sorted(best_so_far, reverse=True)  # never worse
    assert best_so_far[-1] == pytest.approx(data.best.value)
    assert {p.learning_rate for p in data.lr_points} <= set(LRS)
    assert len(data.lr_points) == 6
    # a grid runs every trial in full: one kind of point, and no kind in the legends
    assert {p.kind for p in [*data.history, *data.lr_points]} == {"full"}
    assert data.kinds == {"full": "full run"}
    for chart in [c for c in build(data) if c.id in ("history", "learning_rate")]:
        labels = [t.get_text() for t in chart.figure.axes[0].get_legend().get_texts()]
        assert "full run" not in labels and "complete" in labels


def test_parallel_coordinates_and_importance(data):
    names = [a.name for a in data.axes]
    assert names == ["train.learning_rate", "train.weight_decay", "eval_loss"]
    lr, wd, objective = data.axes
    assert lr.log and (lr.low, lr.high) == (0.001, 0.9)
    assert wd.choices == (0.0, 0.1)
    for _, _, values in data.parallel:
        for a in data.axes:
            assert 0.0 <= a.position(values[a.name]) <= 1.0
    assert objective.low == pytest.approx(data.best.value)
    imp = data.importance
    assert imp.note is None and set(imp.values) == {"train.learning_rate", "train.weight_decay"}
    assert sum(imp.values.values()) == pytest.approx(1.0)
    # the learning rate spans divergence and slow learning; weight decay barely matters here
    assert imp.values["train.learning_rate"] > imp.values["train.weight_decay"]


def test_axis_positions():
    assert Axis("lr", 1e-4, 1e-2, log=True).position(1e-3) == pytest.approx(0.5)
    assert Axis("wd", 0.0, 0.1).position(0.025) == pytest.approx(0.25)
    assert Axis("r", 0, 2, choices=(8, 16, 32)).position(32) == 1.0
    assert Axis("r", 0, 1, choices=(8,)).position(8) == 0.5
    assert Axis("x", 3.0, 3.0).position(3.0) == 0.5


def _frozen(state, reason=None, value=None, number=0, params=None):
    params = params or {}
    t = create_trial(
        state=state, value=value,
        params=params, distributions={k: optuna.distributions.FloatDistribution(0, 1)
                                      for k in params},
        user_attrs={"prune_reason": reason} if reason else {})
    t.number = number
    return t


def test_trial_states_tell_diverged_from_pruned():
    assert trial_state(_frozen(TrialState.PRUNED, "diverged: smoothed loss 9 > 3")) == (
        "diverged", "diverged: smoothed loss 9 > 3")
    assert trial_state(_frozen(TrialState.PRUNED, "loss is nan"))[0] == "diverged"
    assert trial_state(_frozen(TrialState.PRUNED, "pruned at step 4 by the pruner"))[0] == "pruned"
    assert trial_state(_frozen(TrialState.FAIL)) == ("failed", "the run crashed")
    assert trial_state(_frozen(TrialState.COMPLETE, value=1.0)) == ("complete", "")


def test_history_follows_the_direction_and_only_complete_trials_set_the_best():
    trials = [_frozen(TrialState.COMPLETE, value=0.2, number=0),
              _frozen(TrialState.PRUNED, value=0.9, number=1),  # pruned: never the best
              _frozen(TrialState.COMPLETE, value=0.5, number=2),
              _frozen(TrialState.COMPLETE, value=0.4, number=3),
              _frozen(TrialState.FAIL, number=4)]
    states = {t.number: trial_state(t) for t in trials}
    up = history(trials, states, "maximize")
    assert [(p.number, p.best_so_far) for p in up] == [(0, 0.2), (1, 0.2), (2, 0.5), (3, 0.5)]
    down = history(trials, states, "minimize")
    assert [p.best_so_far for p in down] == [0.2, 0.2, 0.2, 0.2]
    assert [p.state for p in down] == ["complete", "pruned", "complete", "complete"]


def test_importance_needs_two_complete_trials_and_two_varying_parameters():
    study = optuna.create_study()
    study.add_trial(_frozen(TrialState.COMPLETE, value=1.0, params={"a": 0.1, "b": 0.5}))
    study.add_trial(_frozen(TrialState.PRUNED, value=3.0, params={"a": 0.9, "b": 0.1}))
    imp = importance_of(study, ["a", "b"])
    assert imp.values == {} and "at least 2 complete trials; this study has 1" in imp.note
    study.add_trial(_frozen(TrialState.COMPLETE, value=2.0, params={"a": 0.7, "b": 0.5}))
    imp = importance_of(study, ["a", "b"])
    assert imp.values == {} and "only a varies" in imp.note


def test_verdict_is_wired_to_diagnose(tmp_path, monkeypatch):
    assert verdict_of(None) == ("n/a", "")
    assert verdict_of(str(tmp_path / "missing")) == ("n/a", "")
    seen = []

    def diagnose(path):
        seen.append(Path(path))
        finding = types.SimpleNamespace(message="eval loss rises after step 40")
        return types.SimpleNamespace(verdict="OVERFIT", findings=[finding])

    monkeypatch.setitem(sys.modules, "tunelm.diagnose", types.SimpleNamespace(diagnose=diagnose))
    assert verdict_of(str(tmp_path)) == ("OVERFIT", "eval loss rises after step 40")
    assert seen == [tmp_path]


def test_verdicts_come_from_tunelm_diagnose(data):
    diagnose = pytest.importorskip("tunelm.diagnose")
    for r in data.rows:
        d = diagnose.diagnose(r.trial_dir)
        assert r.verdict == d.verdict and r.verdict in diagnose.VERDICTS
        assert r.finding == (d.findings[0].message if d.findings else "")
        if r.state == "diverged":
            assert r.verdict != "HEALTHY"


def test_commands_never_show_a_storage_password():
    cmds = commands(None, "postgresql://tuner:s3cret@db:5432/hpo", "contracts", Path("r/best.yaml"))
    assert cmds[0] == "tunelm train r/best.yaml --out runs/best"
    assert cmds[1] == "tunelm export postgresql://tuner:***@db:5432/hpo --study contracts --to trl"


def test_write_report_writes_a_self_contained_page_pngs_and_best_yaml(study_dir, data, tmp_path):
    out = write_report(study_dir, out=tmp_path / "r" / "report.html")
    assert out == tmp_path / "r" / "report.html"
    page = out.read_text()
    # offline: no script, stylesheet, image or font comes from anywhere else
    assert not re.search(r"<(script|link|img|iframe)[^>]*\b(src|href)=", page)
    assert "@import" not in page and "url(http" not in page
    assert page.count('<figure class="chart"') == 5 and page.count("<svg") == 5
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) > 100 and len(ids) == len(set(ids))  # five figures, no id twice
    refs = re.findall(r'(?:url\(#|href="#)([^")]+)', page)
    assert refs and set(refs) <= set(ids)  # every reference inside a figure resolves
    assert page.count("<tr") == 1 + len(data.rows)
    assert f"tunelm export {study_dir} --to trl" in page
    for name in ("history", "curves", "learning_rate", "parallel", "importance"):
        png = tmp_path / "r" / "plots" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    best = load_config(tmp_path / "r" / "best.yaml")
    assert best.train.learning_rate == data.best.params["train.learning_rate"]
    assert len(page) < 400_000  # inline SVG, not a 4 MB plotting library


def test_report_of_a_study_with_no_trials_yet(tmp_path, tiny_config):
    from tunelm.search import open_study

    open_study(tiny_config(), tmp_path / "empty")
    out = write_report(tmp_path / "empty")
    page = out.read_text()
    assert '<figure class="chart"' not in page and page.count('class="no-chart"') == 5
    assert "No trial has completed yet" in page
    assert "at least 2 complete trials; this study has 0" in page
    assert not (tmp_path / "empty" / "best.yaml").exists()
    assert list((tmp_path / "empty" / "plots").iterdir()) == []


def test_cli_report(study_dir, tmp_path, capsys):
    assert main(["-q", "report", str(study_dir)]) == 0
    assert f"report written to {study_dir / 'report.html'}" in capsys.readouterr().out
    assert (study_dir / "plots" / "curves.png").exists() and (study_dir / "best.yaml").exists()
    url = f"sqlite:///{study_dir / 'study.db'}"
    out = tmp_path / "elsewhere.html"
    assert main(["-q", "report", str(tmp_path / "x"), "--storage", url, "--study", "study",
                 "--out", str(out)]) == 0
    assert "Study study" in out.read_text()


@pytest.mark.parametrize("args, message", [
    (["{tmp}/nothing"], "no study in {tmp}/nothing (no study.db)"),
    (["{study}", "--study", "other"], "no study named 'other'"),
])
def test_cli_report_of_what_is_not_a_study_exits_2(study_dir, tmp_path, capsys, args, message):
    fill = {"tmp": tmp_path, "study": study_dir}
    assert main(["-q", "report", *[a.format(**fill) for a in args]]) == 2
    assert message.format(**fill) in capsys.readouterr().err
