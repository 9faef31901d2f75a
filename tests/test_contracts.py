import json

from tunelm.cli import main
from tunelm.tasks import contracts
from tunelm.tasks.metrics import choose_metric, json_scores, parse_json_object


def test_generation_is_deterministic_and_well_formed():
    a = contracts.generate(20, seed=5)
    assert a == contracts.generate(20, seed=5)
    assert a != contracts.generate(20, seed=6)
    for rec in a:
        roles = [m["role"] for m in rec["messages"]]
        assert roles == ["system", "user", "assistant"]
        answer = json.loads(rec["messages"][-1]["content"])
        assert set(answer) == set(contracts.FIELDS)
        clause = rec["messages"][1]["content"]
        for party in answer["parties"]:
            assert party in clause
        assert isinstance(answer["term_months"], int) and isinstance(answer["auto_renewal"], bool)


def test_wording_varies():
    clauses = [r["messages"][1]["content"] for r in contracts.generate(200, seed=0)]
    openings = {c.split(" ")[0] for c in clauses}
    assert len(openings) > 20
    assert sum("automatic" in c or "automatically" in c for c in clauses) > 50


def test_json_scores():
    gold = '{"a": 1, "b": [1, 2]}'
    preds = ['{"a": 1, "b": [1, 2]}', '```json\n{"a": 1, "b": [2]}\n```', "no json here",
             'Sure: {"b": [1, 2], "a": 1} hope that helps']
    s = json_scores(preds, [gold] * 4)
    assert s["exact_match"] == 0.5
    assert s["parse_rate"] == 0.75
    assert s["field_accuracy"] == {"a": 0.75, "b": 0.5}


def test_parse_and_choose():
    assert parse_json_object("x {\"k\": true} y") == {"k": True}
    assert parse_json_object("[1, 2]") is None
    assert choose_metric("auto", ['{"a": 1}', '{"b": 2}']) == "json"
    assert choose_metric("auto", ['{"a": 1}', "plain"]) == "none"


def test_cli_writes_dataset(tmp_path, capsys):
    assert main(["data", "contracts", "--train", "7", "--eval", "3", "--out", str(tmp_path)]) == 0
    lines = (tmp_path / "train.jsonl").read_text().splitlines()
    assert len(lines) == 7
    assert len((tmp_path / "eval.jsonl").read_text().splitlines()) == 3
    assert main(["data", "contracts", "--train", "0", "--out", str(tmp_path)]) == 2


def test_docstrings_task_is_natural_text_with_a_stable_split(tmp_path):
    from tunelm.tasks import docstrings

    paths = docstrings.write_dataset(tmp_path, train=50, eval=10, seed=0)
    train = [json.loads(x)["text"] for x in open(paths["train"])]
    evals = [json.loads(x)["text"] for x in open(paths["eval"])]
    assert len(train) == 50 and len(evals) == 10
    assert not set(train) & set(evals)
    again = docstrings.write_dataset(tmp_path / "again", train=50, eval=10, seed=0)
    assert [json.loads(x)["text"] for x in open(again["eval"])] == evals
    assert all(200 <= len(t) <= 1500 for t in train + evals)
