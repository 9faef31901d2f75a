import csv
import json

import pytest

from tunelm.config import DataConfig
from tunelm.data import (
    IGNORE,
    encode,
    encode_records,
    pack,
    prepare,
    read_records,
    split_records,
    to_messages,
)
from tunelm.errors import DataError
from tunelm.models import tiny_tokenizer

from .conftest import arithmetic_rows, write_jsonl


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def labelled_text(tok, enc):
    return tok.decode([t for t, lab in zip(enc.input_ids, enc.labels) if lab != IGNORE])


def test_completion_only_labels_cover_assistant_turns(tok):
    msgs = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
    ]
    enc = encode(tok, msgs, completion_only=True)
    assert labelled_text(tok, enc) == "hello<|im_end|>\n4<|im_end|>\n"
    full = encode(tok, msgs, completion_only=False)
    assert full.labels == full.input_ids


def test_prompt_completion_and_text_formats(tok, tmp_path):
    cfg = DataConfig(train="x")
    pc = write_jsonl(tmp_path / "pc.jsonl", [{"prompt": "Q", "completion": "A"}])
    rec = read_records(str(pc))[0]
    msgs = to_messages(rec, "prompt_completion", cfg)
    assert msgs[-1] == {"role": "assistant", "content": "A"}
    txt = write_jsonl(tmp_path / "t.jsonl", [{"text": "plain words"}])
    encs, stats = encode_records(tok, read_records(str(txt)), cfg, "train")
    assert stats.format == "text"
    assert encs[0].input_ids[-1] == tok.eos_token_id
    assert labelled_text(tok, encs[0]).startswith("plain words")


def test_csv_with_named_columns(tok, tmp_path):
    path = tmp_path / "d.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["question", "answer"])
        w.writerow(["1+1", "2"])
        w.writerow(["2+2", "4"])
    cfg = DataConfig(train=str(path), prompt_column="question", completion_column="answer")
    encs, stats = encode_records(tok, read_records(str(path)), cfg, "train")
    assert stats.examples == 2 and stats.format == "prompt_completion"
    assert labelled_text(tok, encs[1]) == "4<|im_end|>\n"


def test_directory_of_jsonl(tmp_path):
    write_jsonl(tmp_path / "d" / "a.jsonl", arithmetic_rows(3, 0))
    write_jsonl(tmp_path / "d" / "b.jsonl", arithmetic_rows(2, 1))
    assert len(read_records(str(tmp_path / "d"))) == 5


def test_truncation_is_counted_and_all_truncated_is_an_error(tok, tmp_path):
    rows = [{"messages": [{"role": "user", "content": "x" * 40},
                          {"role": "assistant", "content": "yes"}]}]
    rows.append({"messages": [{"role": "user", "content": "x" * 200},
                              {"role": "assistant", "content": "y" * 20}]})
    path = write_jsonl(tmp_path / "long.jsonl", rows)
    cfg = DataConfig(train=str(path), max_length=80)
    encs, stats = encode_records(tok, read_records(str(path)), cfg, "train")
    assert stats.truncated == 1 and stats.dropped_no_labels == 1 and stats.examples == 1
    assert all(len(e.input_ids) <= 80 for e in encs)
    with pytest.raises(DataError, match="raise data.max_length"):
        encode_records(tok, read_records(str(path)), DataConfig(train=str(path), max_length=20), "train")


@pytest.mark.parametrize("content, message", [
    ('{"messages": [}\n', r"bad.jsonl:1: line is not valid JSON"),
    ('{"text": "ok"}\n[1, 2]\n', r"bad.jsonl:2: expected a JSON object"),
    ('{"prompt": "only a prompt"}\n', r"bad.jsonl:1: cannot tell the format"),
    ('{"messages": [{"role": "user", "content": "q"}]}\n', r"bad.jsonl:1: .*no assistant turn"),
    ('{"messages": [{"role": "robot", "content": "q"}]}\n', r"bad.jsonl:1: messages\[0\] must be"),
    ('{"prompt": "q", "completion": 5}\n', r"bad.jsonl:1: field 'completion' must be a string"),
    ("\n\n", r"bad.jsonl is empty"),
])
def test_malformed_files_name_file_line_and_field(tok, tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        encode_records(tok, read_records(str(path)), DataConfig(train=str(path)), "train")


def test_missing_file_and_wrong_extension(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_records(str(tmp_path / "nope.jsonl"))
    (tmp_path / "data.txt").write_text("hello")
    with pytest.raises(DataError, match="unsupported extension"):
        read_records(str(tmp_path / "data.txt"))


def test_missing_field_with_forced_format(tok, tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"prompt": "q", "answer": "a"}])
    cfg = DataConfig(train=str(path), format="prompt_completion")
    with pytest.raises(DataError, match=r"x.jsonl:1: missing field 'completion'"):
        encode_records(tok, read_records(str(path)), cfg, "train")


def test_seeded_split_is_deterministic(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", arithmetic_rows(50, 0))
    records = read_records(str(path))
    a_train, a_eval = split_records(records, 0.1, seed=3)
    b_train, b_eval = split_records(records, 0.1, seed=3)
    c_train, c_eval = split_records(records, 0.1, seed=4)
    assert [r.where for r in a_eval] == [r.where for r in b_eval]
    assert [r.where for r in a_eval] != [r.where for r in c_eval]
    assert len(a_eval) == 5 and len(a_train) == 45
    assert not {r.where for r in a_eval} & {r.where for r in a_train}


def test_prepare_caps_and_splits(tok, tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", arithmetic_rows(40, 0))
    cfg = DataConfig(train=str(path), eval_fraction=0.1, max_examples=10, max_eval_examples=2)
    data = prepare(tok, cfg, tmp_path)
    assert len(data.train) == 10
    assert len(data.eval) == 2
    assert len(data.eval_records) == 4  # generation metrics may use every held-out example


def test_packing_keeps_labels_and_length(tok):
    encs = [encode(tok, r["messages"], True) for r in arithmetic_rows(10, 0)]
    packed = pack(encs, 100)
    assert sum(len(p.input_ids) for p in packed) == sum(len(e.input_ids) for e in encs)
    assert all(len(p.input_ids) <= 100 for p in packed)
    assert len(packed) < len(encs)
    n_labels = sum(sum(lab != IGNORE for lab in e.labels[1:]) for e in encs)
    assert sum(sum(lab != IGNORE for lab in p.labels) for p in packed) == n_labels


def test_builtin_task_writes_its_data(tok, tmp_path):
    cfg = DataConfig(task="contracts", task_train_size=5, task_eval_size=3)
    data = prepare(tok, cfg, tmp_path)
    assert len(data.train) == 5 and len(data.eval) == 3
    rows = [json.loads(x) for x in (tmp_path / "data" / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 5
