"""`tunelm demo` end to end on the tiny model (the embedded default is `make demo`'s job)."""

import json

import pytest

from tunelm.cli import main
from tunelm.demo import table, tried_table


def test_demo_recommends_searches_compares_and_reports(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["-q", "demo", "--model", "tiny", "--steps", "10", "--train", "32", "--eval", "8",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for label in ("base model", "recommended", "best found"):
        assert label in printed
    record = json.loads((out / "demo.json").read_text())
    labels = [r["label"] for r in record["rows"]]
    assert labels == ["base model", "recommended", "best found"]
    assert all(r["eval_loss"] is not None for r in record["rows"])
    # the search: the recommended config first, then its rate neighbours, 3 trials in all
    tried = record["tried"]
    assert [t["tag"] for t in tried] == ["recommended", "lr", "lr"]
    rec_lr = tried[0]["learning_rate"]
    assert tried[1]["learning_rate"] == pytest.approx(3.16 * rec_lr, rel=0.01)
    up_won = (tried[1]["state"] == "COMPLETE"
              and tried[1]["eval_loss"] < tried[0]["eval_loss"])
    # the walk goes on upwards when the higher rate won, else tries the lower one
    assert tried[2]["learning_rate"] == pytest.approx((10 if up_won else 1 / 3.16) * rec_lr,
                                                      rel=0.01)
    for t in tried:
        assert (t["state"] == "PRUNED") == bool(t["why_stopped"])
        # a finished trial scored its best checkpoint's exact match itself; a stopped one did not
        assert (t["exact_match"] is None) == (t["state"] == "PRUNED")
    # the tuned rows are the trials' own final scores; the base model alone is scored afterwards
    best = next(t for t in tried if t["learning_rate"] == record["rows"][-1]["learning_rate"]
                and t["state"] == "COMPLETE")
    own = json.loads((out / "trials" / f"{best['trial']:04d}" / "result.json").read_text())
    assert record["rows"][-1]["exact_match"] == own["task_metrics"]["exact_match"]
    assert record["rows"][-1]["eval_loss"] == own["final_score"]["eval_loss"]
    base = json.loads((out / "compare" / "base" / "evaluation.json").read_text())
    assert list(base["models"]) == ["base"]
    assert record["rows"][0]["eval_loss"] == base["models"]["base"]["eval_loss"]
    assert record["recommended_steps"] > record["steps"] == 10
    assert set(record["split_seconds"]) == {"recommend", "search", "scoring", "report"}
    assert (out / "recommendation.txt").read_text().strip()
    assert (out / "report.html").exists() and record["report"]
    assert record["stop_reason"].startswith("trial budget spent: 3 of 3")
    # a second demo into the same directory is refused, nothing overwritten
    assert main(["-q", "demo", "--model", "tiny", "--out", str(out)]) == 2
    assert main(["-q", "demo", "--model", "tiny", "--steps", "5", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()


def test_tables_say_what_each_row_is():
    rows = [{"label": "base model", "learning_rate": None, "exact_match": 0.0, "eval_loss": 1.65,
             "note": None},
            {"label": "best found", "learning_rate": 1.32e-3, "exact_match": 0.875,
             "eval_loss": 0.0121, "note": "the recommended config: no neighbour beat it"}]
    text = table(rows)
    assert "87.5%" in text and "1.32e-03" in text and "no neighbour beat it" in text
    tried = [{"trial": 2, "tag": "lr", "learning_rate": 4.17e-4, "rank": 16, "warmup": 0.1,
              "state": "PRUNED", "eval_loss": 0.31, "eval_examples": 12, "steps": 20,
              "seconds": 41.0, "why_stopped": "curve pruner: behind"}]
    line = tried_table(tried).splitlines()[1]
    assert "4.17e-04" in line and "PRUNED" in line and "20" in line and "curve pruner" in line
    assert "0.3100  12" in line  # the loss and how many held-out examples it is on
