"""The task metrics of `eval.metric` (pure: no model) and `search.objective` / `search.direction`
against them: values against the libraries people report them with, the accuracy rule, the
user's own function and every way it can be wrong (exit 2 naming the field, the value and what
is accepted), a metric whose library is missing."""

from __future__ import annotations

import importlib.util
import textwrap

import pytest

from tunelm.config import from_dict
from tunelm.errors import ConfigError
from tunelm.search import goal
from tunelm.tasks import metrics
from tunelm.tasks.metrics import labels, user

PREDS = ["the cat sat on the mat", "a quick brown fox", "hello world", ""]
REFS = ["the cat sat on a mat", "the quick brown fox jumps", "hello there world", "nothing"]


# ---- the library-backed metrics -----------------------------------------------------------------

def test_rouge_is_the_mean_rouge_l_f1_of_rouge_score():
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    expected = sum(scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(PREDS, REFS)) / 4
    got = metrics.score("rouge", PREDS, REFS)
    assert got["rougeL"] == pytest.approx(expected) and got["n"] == 4
    # by hand: "the cat sat" in "the cat sat down": LCS 3, precision 1, recall 3/4, F1 6/7
    assert metrics.score("rouge", ["the cat sat"], ["the cat sat down"])["rougeL"] == \
        pytest.approx(6 / 7)


def test_chrf_is_sacrebleus_corpus_chrf():
    import sacrebleu

    got = metrics.score("chrf", PREDS, REFS)["chrf"]
    assert got == pytest.approx(sacrebleu.corpus_chrf(PREDS, [REFS]).score)
    assert metrics.score("chrf", ["same text"], ["same text"])["chrf"] == pytest.approx(100.0)
    assert 0 < got < 100


# ---- accuracy: label match ----------------------------------------------------------------------

@pytest.mark.parametrize("prediction, label, hit", [
    ("positive", "positive", True),
    ("Positive.", "positive", True),           # case and punctuation at the ends
    ("  positive, clearly so", "positive", True),  # the first word is the label
    ('"B"', "B", True),
    ("not spam", "not spam", True),            # a label of two words matches as a whole
    ("not spam", "spam", False),               # ... and the first word of it is not "spam"
    ("positively", "positive", False),         # a word that starts with the label is not it
    ("negative", "positive", False),
    ("", "positive", False),
])
def test_label_match(prediction, label, hit):
    assert labels.label_match(prediction, label) is hit


def test_accuracy_is_the_share_of_labels_matched():
    got = metrics.score("accuracy", ["Yes.", "no", "maybe so"], ["yes", "yes", "maybe"])
    assert got == {"accuracy": pytest.approx(2 / 3), "n": 3}
    assert metrics.score("accuracy", [], [])["accuracy"] is None


# ---- a user function ----------------------------------------------------------------------------

@pytest.fixture
def user_module(tmp_path):
    """A module `my_scores` in its own directory (not on sys.path), with good and bad scorers."""
    where = tmp_path / "scorers"
    where.mkdir()
    (where / "my_scores.py").write_text(textwrap.dedent("""
        def overlap(predictions, references):
            hits = [len(set(p.split()) & set(r.split())) for p, r in zip(predictions, references)]
            return {"words_shared": sum(hits) / len(hits), "count": len(hits)}

        def a_list(predictions, references):
            return [1.0]

        def text_value(predictions, references):
            return {"score": "high"}

        def nan_value(predictions, references):
            return {"score": float("nan")}

        def reserved(predictions, references):
            return {"n": 3.0}

        NOT_A_FUNCTION = 3
    """))
    yield str(where)
    import sys

    sys.modules.pop("my_scores", None)


def test_a_user_function_scores_predictions(user_module):
    got = metrics.score("my_scores:overlap", ["a b c", "x"], ["a b", "y"], where=user_module)
    assert got == {"words_shared": 1.0, "count": 2.0, "n": 2}


@pytest.mark.parametrize("spec, message", [
    ("my_scores:a_list", "returned list"),
    ("my_scores:text_value", "score='high': a score must be a finite float"),
    ("my_scores:nan_value", "score=nan: a score must be a finite float"),
    ("my_scores:reserved", "the key 'n'"),
    ("my_scores:missing", "has no 'missing'"),
    ("my_scores:NOT_A_FUNCTION", "NOT_A_FUNCTION is a int, not callable"),
    ("no_such_module_xyz:f", "no module named 'no_such_module_xyz'"),
])
def test_a_bad_user_function_is_bad_input_naming_the_field(user_module, spec, message):
    with pytest.raises(ConfigError) as info:
        metrics.score(spec, ["a"], ["a"], where=user_module)
    text = str(info.value)
    assert f"eval.metric {spec!r}" in text and message in text


@pytest.mark.parametrize("value, message", [
    ("my_scores.overlap", "a function is named with a colon"),   # no colon
    ("my scores:overlap", "is not a function reference"),
    ("my_scores:", "is not a function reference"),
    ("rogue", "eval.metric must be one of auto, json, exact, rouge, chrf, accuracy, none, or "
              "package.module:function"),
])
def test_a_malformed_metric_is_refused_by_the_config_check(value, message):
    with pytest.raises(ConfigError) as info:
        from_dict({"data": {"task": "contracts"}, "eval": {"metric": value}})
    assert message in str(info.value) and repr(value) in str(info.value)


def test_a_user_function_is_imported_when_the_config_is_checked(user_module, tmp_path):
    import sys

    assert metrics.availability_problems("my_scores:overlap", user_module) == []
    sys.modules.pop("my_scores")  # a fresh process: the module is not imported yet
    problems = metrics.availability_problems("my_scores:overlap", str(tmp_path))
    assert len(problems) == 1 and "no module named 'my_scores'" in problems[0]


def test_the_module_beside_the_config_file_is_found_from_another_directory(tmp_path,
                                                                         monkeypatch):
    from tunelm.config import load_config

    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "beside.py").write_text(
        "def score(p, r):\n    return {'same': float(sum(a == b for a, b in zip(p, r)))}\n")
    (tmp_path / "cfg" / "c.yaml").write_text(
        "data: {task: contracts}\neval: {metric: 'beside:score'}\nsearch: {objective: same}\n")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    cfg = load_config(tmp_path / "cfg" / "c.yaml")
    assert cfg.eval.metric_path == str((tmp_path / "cfg").resolve())
    try:
        assert metrics.score(cfg.eval.metric, ["x"], ["x"], cfg.eval.metric_path)["same"] == 1.0
    finally:
        import sys

        sys.modules.pop("beside", None)


# ---- a metric's library missing -----------------------------------------------------------------

def test_a_missing_metric_library_names_the_package_and_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "rouge_score" else real(name, *a))
    problem = metrics.missing_library("rouge")
    assert "eval.metric rouge" in problem and "rouge-score" in problem
    assert "pip install 'tunelm[metrics]'" in problem
    assert metrics.missing_library("chrf") is None  # sacrebleu is still there
    assert metrics.missing_library("exact") is None  # no library needed


def test_search_refuses_a_missing_metric_library_before_anything_is_created(
        monkeypatch, tmp_path, capsys):
    from tunelm.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "sacrebleu" else real(name, *a))
    config = tmp_path / "c.yaml"
    config.write_text("model: {name: tiny}\ndata: {task: contracts}\neval: {metric: chrf}\n"
                      "search: {objective: chrf}\n")
    out = tmp_path / "study"
    assert main(["-q", "search", str(config), "--out", str(out), "--trials", "1"]) == 2
    err = capsys.readouterr().err
    assert "eval.metric chrf" in err and "sacrebleu" in err and "tunelm[metrics]" in err
    assert not out.exists()


def test_a_worker_without_the_metric_library_refuses_before_a_trial(monkeypatch, tmp_path,
                                                                    capsys):
    """The study was started where sacrebleu is installed; a worker where it is not joins it."""
    from tunelm.cli import main
    from tunelm.search.opener import load_study, open_study

    cfg = from_dict({"model": {"name": "tiny"}, "data": {"task": "contracts"},
                     "eval": {"metric": "chrf"}, "search": {"objective": "chrf",
                                                            "strategy": "random"}})
    open_study(cfg, tmp_path / "study")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "sacrebleu" else real(name, *a))
    url = f"sqlite:///{tmp_path / 'study' / 'study.db'}"
    code = main(["-q", "worker", "--storage", url, "--study", "study", "--out",
                 str(tmp_path / "w")])
    assert code == 2 and "tunelm[metrics]" in capsys.readouterr().err
    assert load_study(tmp_path / "study")[0].trials == []


@pytest.mark.parametrize("metric, missing", [("rouge", "rouge_score"), ("chrf", "sacrebleu")])
def test_tunelm_validate_names_a_missing_metric_library(monkeypatch, tmp_path, capsys, metric,
                                                        missing):
    from tunelm.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == missing else real(name, *a))
    config = tmp_path / "c.yaml"
    config.write_text(f"model: {{name: tiny}}\ndata: {{task: contracts}}\n"
                      f"eval: {{metric: {metric}}}\n")
    assert main(["-q", "validate", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"eval.metric {metric}" in err and "tunelm[metrics]" in err
    monkeypatch.setattr(importlib.util, "find_spec", real)
    assert main(["-q", "validate", str(config)]) == 0  # installed: valid


# ---- search.objective and search.direction ------------------------------------------------------

def _search(**fields):
    raw = {"data": {"task": "contracts"}, "eval": {}, "search": {}}
    for key, value in fields.items():
        section, name = key.split("__")
        raw[section][name] = value
    return from_dict(raw)


@pytest.mark.parametrize("metric, objective, direction", [
    ("auto", "eval_loss", "minimize"),
    ("json", "exact_match", "maximize"),
    ("json", "parse_rate", "maximize"),
    ("rouge", "rougeL", "maximize"),
    ("chrf", "chrf", "maximize"),
    ("accuracy", "accuracy", "maximize"),
    ("mod:fn", "f1", "maximize"),          # a user function's score: higher is better ...
    ("mod:fn", "word_error", "minimize"),  # ... unless it is named like an error or a loss
    ("mod:fn", "val_loss", "minimize"),
])
def test_the_direction_follows_the_objective(metric, objective, direction):
    cfg = _search(eval__metric=metric, search__objective=objective)
    assert goal.direction_of(cfg.search) == direction


def test_an_explicit_direction_wins():
    cfg = _search(eval__metric="mod:fn", search__objective="f1", search__direction="minimize")
    assert goal.direction_of(cfg.search) == "minimize"
    cfg = _search(search__objective="eval_loss", search__direction="maximize")
    assert goal.direction_of(cfg.search) == "maximize"


@pytest.mark.parametrize("fields, message", [
    ({"eval__metric": "json", "search__objective": "rougeL"},
     "search.objective 'rougeL' is not a score of eval.metric 'json': accepted: eval_loss, "
     "exact_match, parse_rate (it is a score of eval.metric rouge)"),
    ({"eval__metric": "none", "search__objective": "exact_match"},
     "search.objective 'exact_match' is not a score of eval.metric 'none': accepted: eval_loss"),
    ({"eval__metric": "rouge", "search__objective": "f1"},
     "(or set eval.metric to package.module:function, a function returning it)"),
    ({"search__direction": "up"},
     "search.direction must be minimize or maximize (or empty: from the objective), got 'up'"),
    ({"search__objective": ""}, "search.objective must name eval_loss or a score"),
    ({"eval__metric": "exact", "search__objective": "exact_match", "eval__max_examples": 0},
     "eval.max_examples must be > 0, got 0"),
])
def test_bad_objectives_name_the_field_the_value_and_what_is_accepted(fields, message):
    with pytest.raises(ConfigError) as info:
        _search(**fields)
    assert message in str(info.value)


def test_the_value_of_a_trial():
    result = {"best_eval_loss": 1.25, "task_metrics": {"metric": "mod:fn", "f1": 0.5,
                                                     "empty": None, "n": 4}}
    assert goal.value_of("eval_loss", "minimize", result) == 1.25
    assert goal.value_of("f1", "maximize", result) == 0.5
    assert goal.value_of("empty", "maximize", result) == float("-inf")  # no examples: worst
    assert goal.value_of("empty", "minimize", result) == float("inf")
    with pytest.raises(ConfigError, match="search.objective 'recall': the trial's eval.metric "
                                          "'mod:fn' returned f1; name one of them"):
        goal.value_of("recall", "maximize", result)


def test_the_eval_loss_objective_is_the_whole_sets_final_score_where_there_is_one():
    """The curve's best is on the pruning subset; a finished run's value is its best checkpoint
    on the whole eval set (runner/final_score.py), a probe's (no final score) its curve's."""
    scored = {"best_eval_loss": 1.25, "final_score": {"eval_loss": 1.5, "examples": 40}}
    assert goal.value_of("eval_loss", "minimize", scored) == 1.5
    assert goal.value_of("eval_loss", "minimize", {"best_eval_loss": 1.25,
                                                   "final_score": None}) == 1.25
    unscored = {"best_eval_loss": 1.25, "final_score": {"note": "not scored under fsdp"}}
    assert goal.value_of("eval_loss", "minimize", unscored) == 1.25


def test_the_pruning_note_says_what_is_read_and_why():
    assert "eval_loss, the objective" in goal.pruning_note("eval_loss", "minimize")
    note = goal.pruning_note("rougeL", "maximize")
    assert note.startswith("pruning reads eval_loss") and "measured once per trial" in note


def test_the_registry_is_what_the_config_accepts():
    from tunelm.config import TASK_METRICS

    assert TASK_METRICS == ("auto", "json", "exact", "rouge", "chrf", "accuracy", "none")
    assert user.is_user_spec("a.b:c") and not user.is_user_spec("rouge")



def test_the_readmes_metric_function_runs_as_its_config_says(tmp_path, monkeypatch):
    """The README's example function, beside the config of the README that names it."""
    import re
    import sys
    from pathlib import Path

    from tunelm.config import load_config

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(# my_metrics\.py.*?)```", readme, re.S).group(1)
    excerpt = re.search(r"```yaml\n# my\.yaml \(excerpt\)\n(.*?)```", readme, re.S).group(1)
    (tmp_path / "my_metrics.py").write_text(code)
    (tmp_path / "my.yaml").write_text("data: {task: contracts}\n" + excerpt)
    monkeypatch.chdir(Path(__file__).parent)
    cfg = load_config(tmp_path / "my.yaml")
    assert goal.direction_of(cfg.search) == "maximize"
    try:
        scores = metrics.score(cfg.eval.metric, ["the cat sat", "hello"],
                               ["the cat sat down", "hello world"], cfg.eval.metric_path)
    finally:
        sys.modules.pop("my_metrics", None)
    assert scores["keyword_recall"] == pytest.approx((3 / 4 + 1 / 2) / 2)
    assert cfg.search.objective in scores


def test_tunelm_train_prints_every_score_of_the_metric():
    from tunelm.cli.train import _score_lines

    lines = _score_lines({"metric": "chrf", "chrf": 61.25, "n": 4},
                         {"metric": "chrf", "chrf": 12.5, "n": 4})
    assert lines == ["chrf              61.2500 (best checkpoint, n=4)",
                     "  base model      12.5000"]
    lines = _score_lines({"exact_match": 0.75, "parse_rate": 1.0, "n": 8, "field_accuracy": {}},
                         {})
    assert lines == ["exact match       75.0% (best checkpoint, n=8)", "parse rate        100.0%"]
    assert _score_lines({}, {}) == []
