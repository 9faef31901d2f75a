"""tunelm evaluate on tiny runs: a run's adapter and the base model on a held-out file."""

import csv
import json

import pytest

from tunelm.cli import main
from tunelm.errors import ConfigError, DataError, ModelError
from tunelm.evaluate import comparison, evaluate_run, resolve
from tunelm.runner import run_trial

from .conftest import arithmetic_rows, write_jsonl

JSON_EVAL = {"metric": "json", "max_examples": 4, "max_new_tokens": 8, "batch_size": 4}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One tiny LoRA run, trained once for the module; returns (run dir, its result, data dir)."""
    from tunelm.config import from_dict

    root = tmp_path_factory.mktemp("evaluate")
    train = write_jsonl(root / "data" / "train.jsonl", arithmetic_rows(64, 0))
    evals = write_jsonl(root / "data" / "eval.jsonl", arithmetic_rows(12, 1))
    cfg = from_dict({
        "model": {"name": "tiny", "precision": "fp32"},
        "lora": {"r": 4, "alpha": 32, "dropout": 0.0},
        "data": {"train": str(train), "eval": str(evals), "max_length": 64},
        "train": {"learning_rate": 3e-3, "batch_size": 8, "max_steps": 12, "eval_steps": 4,
                  "early_stopping_patience": None},
        "eval": JSON_EVAL,
    })
    result = run_trial(cfg, root / "run", progress=False)
    return root / "run", result, root / "data"


def test_eval_loss_on_the_runs_own_eval_file_matches_the_run(tiny_run, tmp_path):
    run, result, data = tiny_run
    out = evaluate_run(run, data / "eval.jsonl", baseline=True, out=tmp_path / "ev")
    # the best adapter is the one saved; on the run's own eval file (12 examples: batches of
    # 8 and 4, so the batch weighting matters) its loss is the run's best eval loss. (On a
    # 40-step run of this kind a plain mean of the batch losses was 4e-4 off, a mean over
    # all tokens 6e-6 off: the tolerance tells them apart.)
    assert out["models"]["tuned"]["eval_loss"] == pytest.approx(result["best_eval_loss"], rel=2e-6)
    # the base model is really the base: a much higher loss (the run learnt the format)
    assert out["models"]["base"]["eval_loss"] > out["models"]["tuned"]["eval_loss"] + 0.5
    assert out["models"]["tuned"]["task"]["metric"] == "json"
    assert out["models"]["tuned"]["task"]["n"] == 12  # every example, not eval.max_examples
    assert out["generated"] == 12 and out["examples"] == 12
    # the files
    saved = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert saved == json.loads(json.dumps(out))
    rows = [json.loads(x) for x in
            (tmp_path / "ev" / "evaluation_predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 12
    for key in ("prompt", "reference", "output_tuned", "output_base", "loss_tuned", "loss_base",
                "match_tuned", "match_base", "source"):
        assert key in rows[0], key
    given = [json.loads(x) for x in (data / "eval.jsonl").read_text().splitlines()]
    assert [r["reference"] for r in rows] == [g["messages"][1]["content"] for g in given]
    assert all(r["prompt"].rstrip().endswith("assistant") for r in rows)  # ChatML, to answer
    hits = sum(r["match_tuned"] for r in rows)
    assert hits / 12 == pytest.approx(out["models"]["tuned"]["task"]["exact_match"])
    # the table as data: eval loss first, tuned and base side by side
    first = out["comparison"][0]
    assert first["figure"] == "eval loss" and first["change"] == pytest.approx(
        first["tuned"] - first["base"])


def test_the_baseline_matches_a_fresh_base_model(tiny_run, tmp_path):
    """disable_adapter() really is the base model: its loss equals a separately loaded base's."""
    import torch

    from tunelm.base_model import load_base_model
    from tunelm.data import read_records
    from tunelm.evaluate import encode_indexed, eval_loss

    run, _, data = tiny_run
    out = evaluate_run(run, data / "eval.jsonl", baseline=True, out=tmp_path / "ev",
                       metric="none")
    cfg = resolve(str(run)).cfg
    base, tok, _ = load_base_model(cfg.model, "fp32", "cpu")
    examples = [e for _, e in encode_indexed(tok, read_records(str(data / "eval.jsonl")),
                                             cfg.data)]
    with torch.no_grad():
        fresh, _ = eval_loss(base, tok, examples, cfg.train.batch_size, "cpu", "fp32")
    assert out["models"]["base"]["eval_loss"] == pytest.approx(fresh, rel=1e-5)
    assert out["models"]["tuned"]["task"] == {}  # --metric none: loss only


def test_csv_file_and_default_output_directory(tiny_run):
    run, _, data = tiny_run
    rows = arithmetic_rows(6, 7)
    path = data / "reviewed.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["prompt", "completion", "reviewer"])
        w.writeheader()
        for r in rows:
            w.writerow({"prompt": r["messages"][0]["content"],
                        "completion": r["messages"][1]["content"], "reviewer": "ana"})
    out = evaluate_run(run, path)
    assert out["out"] == str(run / "eval-reviewed")
    assert (run / "eval-reviewed" / "evaluation.json").exists()
    assert out["examples"] == 6 and out["models"]["tuned"]["task"]["n"] == 6
    assert "base" not in out["models"]
    preds = [json.loads(x) for x in
             (run / "eval-reviewed" / "evaluation_predictions.jsonl").read_text().splitlines()]
    assert [p["source"] for p in preds] == [f"{path}:{i}" for i in range(2, 8)]
    assert "output_base" not in preds[0]


def test_a_study_is_scored_through_its_best_trial(tiny_config, tmp_path):
    from tunelm.search import run_search

    cfg = tiny_config(train={"max_steps": 4, "eval_steps": 2},
                      search={"strategy": "grid", "trials": 2, "pruner": "none",
                              "space": {"train.learning_rate": {"type": "categorical",
                                                                "choices": [1e-5, 3e-3]}}})
    result = run_search(cfg, tmp_path / "study")
    target = resolve(str(tmp_path / "study"))
    assert str(target.run_dir) == result.best_trial_dir
    assert target.cfg.train.learning_rate == result.best_params["train.learning_rate"]
    out = evaluate_run(tmp_path / "study", cfg.data.eval, out=tmp_path / "ev")
    assert out["study"] == "study" and out["trial"] == target.trial
    assert out["run"] == result.best_trial_dir


def test_full_fine_tuning_run(tiny_config, tmp_path):
    cfg = tiny_config(model={"method": "full"}, train={"learning_rate": 1e-3})
    result = run_trial(cfg, tmp_path / "run", progress=False)
    out = evaluate_run(tmp_path / "run", cfg.data.eval, baseline=True, out=tmp_path / "ev")
    assert out["models"]["tuned"]["eval_loss"] == pytest.approx(result["best_eval_loss"], rel=1e-4)
    assert out["models"]["base"]["eval_loss"] > out["models"]["tuned"]["eval_loss"]


def test_comparison_rows():
    scored = {"base": {"eval_loss": 2.0, "task": {"exact_match": 0.0, "parse_rate": 0.5,
                                                  "field_accuracy": {"sum": 0.25}}},
              "tuned": {"eval_loss": 0.5, "task": {"exact_match": 0.75, "parse_rate": 1.0,
                                                   "field_accuracy": {"sum": 0.75}}}}
    rows = comparison(scored)
    assert [r["figure"] for r in rows] == ["eval loss", "exact match", "parse rate", "sum"]
    assert [r["change"] for r in rows] == pytest.approx([-1.5, 0.75, 0.5, 0.5])
    assert rows[3]["indent"] and rows[0]["kind"] == "loss"
    only = comparison({"tuned": {"eval_loss": 0.5, "task": {}}})
    assert only == [{"figure": "eval loss", "indent": False, "base": None, "tuned": 0.5,
                     "change": None, "kind": "loss"}]
    # the base model alone (evaluate_run(tuned=False)): its figures, nothing to compare with
    base = comparison({"base": scored["base"]})
    assert [r["figure"] for r in base] == ["eval loss", "exact match", "parse rate", "sum"]
    assert all(r["tuned"] is None and r["change"] is None for r in base)


def test_scoring_neither_model_is_refused():
    with pytest.raises(ValueError, match="tuned model, the base model or both"):
        evaluate_run("no-such-run", "no-such.jsonl", tuned=False)


def test_prediction_rows_line_up_outputs_losses_and_matches():
    from tunelm.data import Record
    from tunelm.evaluate import prediction_rows

    records = [Record({"prompt": "a", "completion": '{"x": 1}'}, "f.csv:2"),
               Record({"prompt": "b", "completion": '{"x": 2}'}, "f.csv:3"),
               Record({"prompt": "c", "completion": '{"x": 3}'}, "f.csv:4")]
    gen = {"tuned": [{"prompt": "A", "reference": '{"x": 1}', "prediction": '{"x": 1}'},
                     {"prompt": "B", "reference": '{"x": 2}', "prediction": '{"x": 5}'}],
           "base": [{"prompt": "A", "reference": '{"x": 1}', "prediction": "no"},
                    {"prompt": "B", "reference": '{"x": 2}', "prediction": '```json\n{"x": 2}```'}]}
    losses = {"tuned": {0: 0.1, 2: 0.3}, "base": {0: 2.0, 1: float("nan"), 2: 1.0}}
    rows = prediction_rows(records, gen, losses, "json")
    assert [r["match_tuned"] for r in rows[:2]] == [True, False]
    assert [r["match_base"] for r in rows[:2]] == [False, True]
    assert rows[0]["prompt"] == "A" and rows[1]["output_base"].startswith("```json")
    # generation capped at 2 examples: the third has losses only; a skipped or NaN loss is None
    assert rows[2] == {"index": 2, "source": "f.csv:4", "loss_tuned": 0.3, "loss_base": 1.0}
    assert rows[1]["loss_tuned"] is None and rows[1]["loss_base"] is None


# ----------------------------------------------------------------------------------------------
# Bad inputs: exit 2, with what is wrong and what to do
# ----------------------------------------------------------------------------------------------


def test_bad_inputs(tiny_run, tmp_path):
    run, _, data = tiny_run
    with pytest.raises(DataError, match="does not exist"):
        evaluate_run(run, tmp_path / "missing.jsonl")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="unsupported extension '.txt'"):
        evaluate_run(run, tmp_path / "notes.txt")
    write_jsonl(tmp_path / "odd.jsonl", [{"question": "1+1", "answer": "2"}])
    with pytest.raises(DataError, match="cannot tell the format"):
        evaluate_run(run, tmp_path / "odd.jsonl")
    with pytest.raises(ModelError, match="no such directory"):
        evaluate_run(tmp_path / "nowhere", data / "eval.jsonl")
    (tmp_path / "plain").mkdir()
    with pytest.raises(ModelError, match="neither a run directory"):
        evaluate_run(tmp_path / "plain", data / "eval.jsonl")
    with pytest.raises(ConfigError, match="--metric must be one of"):
        evaluate_run(run, data / "eval.jsonl", metric="bleu")
    with pytest.raises(ConfigError, match="--max-examples must be >= 1"):
        evaluate_run(run, data / "eval.jsonl", max_examples=0)


def test_run_without_a_saved_adapter(tiny_config, tmp_path):
    cfg = tiny_config(train={"max_steps": 2, "eval_steps": 2, "save_best": False})
    run_trial(cfg, tmp_path / "run", progress=False)
    with pytest.raises(ModelError, match="no saved adapter or weights in best/"):
        resolve(str(tmp_path / "run"))


def test_study_without_a_finished_trial(tiny_config, tmp_path):
    from tunelm.search import open_study

    open_study(tiny_config(), tmp_path / "study")  # created, nothing run
    with pytest.raises(ConfigError, match="no finished trial"):
        resolve(str(tmp_path / "study"))


def test_cli_evaluate(tiny_run, tmp_path, capsys):
    run, result, data = tiny_run
    code = main(["-q", "evaluate", str(run), "--data", str(data / "eval.jsonl"), "--baseline",
                 "--out", str(tmp_path / "ev")])
    assert code == 0
    shown = capsys.readouterr().out
    lines = shown.splitlines()
    assert "base" in lines[1] and "tuned" in lines[1] and "change" in lines[1]
    loss_line = next(x for x in lines if x.startswith("eval loss"))
    assert f"{result['best_eval_loss']:.4f}" in loss_line
    assert any(x.startswith("exact match") and "pts" in x for x in lines)
    assert str(tmp_path / "ev") in shown


@pytest.mark.parametrize("args, message", [
    (["--data", "{data}/missing.jsonl"], "does not exist"),
    (["--data", "{data}/eval.jsonl", "--metric", "bleu"], "--metric must be one of"),
    (["--data", "{data}/eval.jsonl", "--max-examples", "0"], "--max-examples must be >= 1"),
])
def test_cli_evaluate_bad_inputs_exit_2(tiny_run, capsys, args, message):
    run, _, data = tiny_run
    args = [a.format(data=data) for a in args]
    assert main(["evaluate", str(run), *args]) == 2
    assert message in capsys.readouterr().err


def test_cli_evaluate_without_data_flag_exits_2(tiny_run, capsys):
    run, _, _ = tiny_run
    with pytest.raises(SystemExit) as exc:  # argparse's own check, with our exit code
        main(["evaluate", str(run)])
    assert exc.value.code == 2
    assert "required: --data" in capsys.readouterr().err
