"""Data through Hugging Face `datasets`: every file format, directories, save_to_disk datasets
with subset and split, Python objects; chat content as parts, system turns and tools."""

import json

import pytest

from tunelm.cli import main
from tunelm.config import DataConfig
from tunelm.data import IGNORE, Record, encode, prepare, read_records, to_messages, tools_of
from tunelm.errors import DataError
from tunelm.models import tiny_tokenizer

from .conftest import arithmetic_rows, write_jsonl

PC_ROWS = [{"prompt": f"{a}+{a}=", "completion": str(2 * a)} for a in range(12)]


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def _write(path, rows):
    """`rows` in the format the file's extension names, written by `datasets` itself."""
    import pyarrow as pa
    from datasets import Dataset

    path.parent.mkdir(parents=True, exist_ok=True)
    ds = Dataset.from_list(rows)
    suffix = path.suffix
    if suffix == ".jsonl":
        write_jsonl(path, rows)
    elif suffix == ".json":
        path.write_text(json.dumps(rows))
    elif suffix == ".csv":
        ds.to_csv(str(path), index=False)
    elif suffix == ".parquet":
        ds.to_parquet(str(path))
    elif suffix == ".arrow":
        table = ds.data.table
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
            w.write_table(table)
    return path


def _ids(data):
    return [row["input_ids"] for row in data.train], [row["input_ids"] for row in data.eval]


@pytest.fixture
def reference(tok, tmp_path):
    path = _write(tmp_path / "ref" / "train.jsonl", PC_ROWS)
    return _ids(prepare(tok, DataConfig(train=str(path)), tmp_path, cache_dir=tmp_path / "c"))


@pytest.mark.parametrize("suffix", [".json", ".csv", ".parquet", ".arrow"])
def test_every_file_format_gives_the_tokens_of_jsonl(tok, tmp_path, reference, suffix):
    path = _write(tmp_path / f"train{suffix}", PC_ROWS)
    data = prepare(tok, DataConfig(train=str(path)), tmp_path, cache_dir=tmp_path / "c")
    assert _ids(data) == reference
    assert data.stats["train"]["format"] == "prompt_completion"


def test_a_directory_of_mixed_files_reads_them_in_name_order(tok, tmp_path, reference):
    _write(tmp_path / "d" / "a.parquet", PC_ROWS[:5])
    _write(tmp_path / "d" / "b.jsonl", PC_ROWS[5:9])
    _write(tmp_path / "d" / "c.csv", PC_ROWS[9:])
    data = prepare(tok, DataConfig(train=str(tmp_path / "d")), tmp_path, cache_dir=tmp_path / "c")
    assert _ids(data) == reference
    assert len(read_records(str(tmp_path / "d"))) == len(PC_ROWS)


def _hub_shaped(root):
    """A directory shaped like a hub dataset: one save_to_disk DatasetDict per subset."""
    from datasets import Dataset, DatasetDict

    for subset, rows in (("easy", PC_ROWS), ("chat", arithmetic_rows(6, 0))):
        DatasetDict({"train": Dataset.from_list(rows),
                     "test": Dataset.from_list(rows[:3])}).save_to_disk(str(root / subset))
    return root


def test_save_to_disk_dataset_with_subset_and_splits(tok, tmp_path):
    root = _hub_shaped(tmp_path / "hub")
    cfg = DataConfig(train=str(root), subset="easy", split="train", eval_split="test")
    data = prepare(tok, cfg, tmp_path, cache_dir=tmp_path / "c")
    assert len(data.train) == len(PC_ROWS) and len(data.eval) == 3
    assert data.eval_records[0].data["completion"] == "0"
    chat = prepare(tok, DataConfig(train=str(root / "chat"), eval_split="test"), tmp_path,
                   cache_dir=tmp_path / "c")
    assert chat.stats["train"]["format"] == "messages" and len(chat.train) == 6


def test_a_missing_split_or_subset_names_what_there_is(tok, tmp_path):
    root = _hub_shaped(tmp_path / "hub")
    with pytest.raises(DataError, match=r"data.split 'validation' is not in .*it has test, train"):
        prepare(tok, DataConfig(train=str(root), subset="easy", split="validation"), tmp_path,
                cache_dir=tmp_path / "c")
    with pytest.raises(DataError, match=r"data.subset 'hard'"):
        prepare(tok, DataConfig(train=str(root), subset="hard"), tmp_path, cache_dir=tmp_path / "c")


def test_a_dataset_or_a_list_passed_from_python(tok, tmp_path, reference):
    from datasets import Dataset

    cfg = DataConfig(train="unused")
    data = prepare(tok, cfg, tmp_path, cache_dir=tmp_path / "c", train=Dataset.from_list(PC_ROWS))
    assert _ids(data) == reference
    data = prepare(tok, cfg, tmp_path, cache_dir=tmp_path / "c", train=PC_ROWS)
    assert _ids(data) == reference


def test_rows_of_mixed_types_fall_back_to_json_text(tok, tmp_path):
    rows = arithmetic_rows(4, 0)
    rows[1]["messages"][1]["content"] = [{"type": "text", "text": "{\"sum\": "},
                                         {"type": "text", "text": "3}"}]
    path = write_jsonl(tmp_path / "mixed.jsonl", rows)
    data = prepare(tok, DataConfig(train=str(path), eval_fraction=0.25), tmp_path,
                   cache_dir=tmp_path / "c")
    assert len(data.train) == 3 and len(data.eval) == 1


def test_content_as_a_list_of_text_parts_encodes_as_the_string(tok):
    cfg = DataConfig(train="x")
    plain = arithmetic_rows(1, 0)[0]
    parts = json.loads(json.dumps(plain))
    text = parts["messages"][1]["content"]
    parts["messages"][1]["content"] = [{"type": "text", "text": text[:3]},
                                       {"type": "text", "text": text[3:]}]
    msgs = to_messages(Record(parts, "r:1"), "messages", cfg)
    assert msgs == to_messages(Record(plain, "r:1"), "messages", cfg)
    bad = {"messages": [{"role": "user", "content": [{"type": "image", "url": "x.png"}]},
                        {"role": "assistant", "content": "a"}]}
    with pytest.raises(DataError, match=r"r:1: messages\[0\].content\[0\] must be a text part"):
        to_messages(Record(bad, "r:1"), "messages", cfg)


TOOLS_TEMPLATE = (
    "{% if tools %}{{ '<|im_start|>system\\nTOOLS ' + (tools | tojson) + '<|im_end|>\\n' }}"
    "{% endif %}{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def test_system_turns_and_tools_reach_the_chat_template(tmp_path):
    tok = tiny_tokenizer()
    tok.chat_template = TOOLS_TEMPLATE
    tool = {"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}
    rows = [{"messages": [{"role": "system", "content": "be exact"},
                          {"role": "user", "content": "1+2="},
                          {"role": "assistant", "content": "3"}], "tools": [tool]},
            {"prompt": "2+2=", "completion": "4", "system": "be brief"}]
    path = write_jsonl(tmp_path / "t.jsonl", rows)
    data = prepare(tok, DataConfig(train=str(path), eval="unused" and str(path)), tmp_path,
                   cache_dir=tmp_path / "c")
    first, second = (tok.decode(data.train[i]["input_ids"]) for i in range(2))
    assert 'TOOLS [{"type": "function"' in first and "be exact" in first
    assert "<|im_start|>system\nbe brief" in second
    labelled = [t for t, lab in zip(data.train[0]["input_ids"], data.train[0]["labels"])
                if lab != IGNORE]
    assert tok.decode(labelled) == "3<|im_end|>\n"  # the tools are prompt, not completion
    assert encode(tok, to_messages(Record(rows[0], "x"), "messages", DataConfig(train="x")),
                  True).input_ids != data.train[0]["input_ids"]
    as_text = {**rows[0], "tools": json.dumps([tool])}  # some datasets keep tools as JSON text
    assert tools_of(Record(as_text, "x")) == [tool]
    with pytest.raises(DataError, match="x: field 'tools' is text but not JSON"):
        tools_of(Record({**rows[0], "tools": "[{"}, "x"))


def test_a_row_error_in_parquet_names_the_file_row_and_field(tok, tmp_path):
    rows = [dict(r) for r in PC_ROWS[:3]]
    rows[2]["completion"] = " "
    path = _write(tmp_path / "p.parquet", rows)
    with pytest.raises(DataError, match=r"p.parquet row 2: field 'completion' is empty"):
        prepare(tok, DataConfig(train=str(path), eval=str(path)), tmp_path,
                cache_dir=tmp_path / "c")


def _train_args(tmp_path, *sets):
    argv = ["-q", "train", "presets/tiny.yaml", "--out", str(tmp_path / "r"),
            "--set", "data.max_length=64"]
    for s in sets:
        argv += ["--set", s]
    return argv


def test_malformed_parquet_exits_2_with_the_reason(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TUNELM_DATA_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "train.parquet"
    path.write_bytes(b"PAR1 this is not a parquet file")
    assert main(_train_args(tmp_path, f"data.train={path}")) == 2
    err = capsys.readouterr().err
    assert "train.parquet: not a readable parquet file" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_a_missing_split_exits_2_with_the_reason(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TUNELM_DATA_CACHE", str(tmp_path / "cache"))
    root = _hub_shaped(tmp_path / "hub")
    code = main(_train_args(tmp_path, f"data.train={root}", "data.subset=easy",
                            "data.split=validation"))
    err = capsys.readouterr().err
    assert code == 2 and "data.split 'validation' is not in" in err and "test, train" in err


def test_config_rejects_an_empty_split_name():
    from tunelm.config import from_dict
    from tunelm.errors import ConfigError

    with pytest.raises(ConfigError, match=r"data.split must be a split name.*got ''"):
        from_dict({"model": {"name": "tiny"}, "data": {"train": "x.jsonl", "split": ""}})


def test_a_hub_id_that_cannot_be_read_or_lacks_the_split(tmp_path, monkeypatch):
    """No network here: the hub's answers are stood in for; what is ours is the message."""
    import datasets

    from tunelm.data import open_source

    def offline(*_a, **_k):
        raise ConnectionError("Couldn't reach 'org/name' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "get_dataset_split_names", offline)
    with pytest.raises(DataError, match=r"'org/name' is neither a local path nor a dataset on "
                                        r"the Hugging Face Hub .*OfflineModeIsEnabled"):
        open_source("org/name", DataConfig(train="org/name"))
    monkeypatch.setattr(datasets, "get_dataset_split_names", lambda *a, **k: ["train", "test"])
    with pytest.raises(DataError, match=r"data.split 'validation' is not in org/name: it has "
                                        r"train, test"):
        open_source("org/name", DataConfig(train="org/name", split="validation"))
    with pytest.raises(DataError, match="does not exist"):  # a path, not a hub id
        open_source(str(tmp_path / "org" / "name.jsonl"), DataConfig(train="x"))
