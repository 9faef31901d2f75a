"""`tunelm demo` end to end on the tiny model (the embedded default is `make demo`'s job)."""

import json

from tunelm.cli import main


def test_demo_recommends_searches_compares_and_reports(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["-q", "demo", "--model", "tiny", "--steps", "10", "--train", "32", "--eval", "8",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for label in ("base model", "recommended", "too-high lr (1e-2)", "best found"):
        assert label in printed
    record = json.loads((out / "demo.json").read_text())
    labels = [r["label"] for r in record["rows"]]
    assert labels == ["base model", "recommended", "too-high lr (1e-2)", "best found"]
    high = record["rows"][2]
    assert high["learning_rate"] == 1e-2
    assert all(r["eval_loss"] is not None for r in record["rows"] if r["note"] is None)
    assert (out / "recommendation.txt").read_text().strip()
    assert (out / "report.html").exists() and record["report"]
    assert record["stop_reason"] == "protocol finished"
    # a second demo into the same directory is refused, nothing overwritten
    assert main(["-q", "demo", "--model", "tiny", "--out", str(out)]) == 2
    assert main(["-q", "demo", "--model", "tiny", "--steps", "5", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()
