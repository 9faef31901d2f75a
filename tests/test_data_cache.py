"""Tokenize once: the second prepare of the same data, tokenizer and settings reads the cache;
any change of them tokenizes again; racing processes leave one whole entry."""

import json
import os
import subprocess
import sys

import pytest

from tunelm.config import DataConfig
from tunelm.data import prepare
from tunelm.errors import DataError
from tunelm.models import CHATML_TEMPLATE, tiny_tokenizer

from .conftest import ROOT, arithmetic_rows, write_jsonl

prepare_module = sys.modules["tunelm.data.prepare"]


@pytest.fixture
def tok():
    return tiny_tokenizer()


@pytest.fixture
def data_file(tmp_path):
    return write_jsonl(tmp_path / "d" / "train.jsonl", arithmetic_rows(40, 0))


def _rows(data):
    return [r["input_ids"] for r in data.train], [r["input_ids"] for r in data.eval]


def test_the_second_prepare_reads_the_cache_without_tokenizing(tok, tmp_path, data_file,
                                                                monkeypatch):
    cfg = DataConfig(train=str(data_file), max_length=64)
    first = prepare(tok, cfg, tmp_path / "trial1", cache_dir=tmp_path / "c")
    assert not first.cache_hit

    def fail(*_a, **_k):
        raise AssertionError("a cache hit must not read or tokenize the data")

    monkeypatch.setattr(prepare_module, "tokenize", fail)
    monkeypatch.setattr(prepare_module, "load_files", fail)
    second = prepare(tok, cfg, tmp_path / "trial2", cache_dir=tmp_path / "c")
    assert second.cache_hit and second.stats["cache"]["hit"]
    assert _rows(second) == _rows(first)
    assert [r.data for r in second.eval_records] == [r.data for r in first.eval_records]
    assert second.eval_records[0].where.startswith(f"{data_file}:")
    # memory-mapped from the cache entry, not a copy in RAM
    entry = tmp_path / "c" / second.stats["cache"]["key"]
    files = [f["filename"] for f in second.train.ds.cache_files]
    assert files and all(f.startswith(str(entry)) for f in files)


def test_the_same_content_elsewhere_hits(tok, tmp_path, data_file):
    cfg = DataConfig(train=str(data_file), max_length=64)
    prepare(tok, cfg, tmp_path, cache_dir=tmp_path / "c")
    copy = write_jsonl(tmp_path / "elsewhere" / "x.jsonl", arithmetic_rows(40, 0))
    assert prepare(tok, DataConfig(train=str(copy), max_length=64), tmp_path,
                   cache_dir=tmp_path / "c").cache_hit


@pytest.mark.parametrize("change", ["max_length", "packing", "completion_only", "content",
                                    "template"])
def test_any_change_that_alters_tokens_tokenizes_again(tok, tmp_path, data_file, change):
    cfg = DataConfig(train=str(data_file), max_length=64)
    first = prepare(tok, cfg, tmp_path, cache_dir=tmp_path / "c")
    if change == "content":
        write_jsonl(data_file, arithmetic_rows(40, 1))
    elif change == "template":
        tok.chat_template = CHATML_TEMPLATE.replace("<|im_start|>", "<|im_start|> ")
    else:
        value = 48 if change == "max_length" else not getattr(cfg, change)
        cfg = DataConfig(train=str(data_file), **{"max_length": 64, change: value})
    again = prepare(tok, cfg, tmp_path, cache_dir=tmp_path / "c")
    assert not again.cache_hit
    assert again.stats["cache"]["key"] != first.stats["cache"]["key"]


def test_a_partial_entry_of_a_crashed_build_is_rebuilt(tok, tmp_path, data_file):
    cfg = DataConfig(train=str(data_file), max_length=64)
    key = prepare(tok, cfg, tmp_path, cache_dir=tmp_path / "c").stats["cache"]["key"]
    (tmp_path / "c" / key / "done").unlink()
    (tmp_path / "c" / key / "train" / "state.json").write_text("{broken")
    again = prepare(tok, cfg, tmp_path, cache_dir=tmp_path / "c")
    assert not again.cache_hit and len(again.train) == 36


def test_parallel_tokenizing_reports_errors_with_their_line(tok, tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules["tunelm.data.tokenize"], "PARALLEL_FROM", 10)
    rows = arithmetic_rows(30, 0)
    path = write_jsonl(tmp_path / "ok.jsonl", rows)
    data = prepare(tok, DataConfig(train=str(path), eval=str(path)), tmp_path,
                   cache_dir=tmp_path / "c")
    assert len(data.train) == 30
    rows[25]["messages"][1]["role"] = "robot"
    bad = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(DataError, match=r"bad.jsonl:26: messages\[1\] must be"):
        prepare(tok, DataConfig(train=str(bad), eval=str(path)), tmp_path,
                cache_dir=tmp_path / "c")


RACE = """
import json, sys
from tunelm.config import DataConfig
from tunelm.data import prepare
from tunelm.models import tiny_tokenizer
data = prepare(tiny_tokenizer(), DataConfig(train=sys.argv[1], max_length=64), sys.argv[2],
               cache_dir=sys.argv[3])
print(json.dumps({"hit": data.cache_hit, "train": [r["input_ids"] for r in data.train]}))
"""


def test_two_processes_racing_leave_one_whole_entry(tmp_path, data_file):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", RACE, str(data_file), str(tmp_path / f"w{i}"),
                               str(tmp_path / "c")], stdout=subprocess.PIPE, text=True, env=env)
             for i in range(2)]
    outs = [json.loads(p.communicate(timeout=300)[0].strip().splitlines()[-1]) for p in procs]
    assert sorted(o["hit"] for o in outs) == [False, True]
    assert outs[0]["train"] == outs[1]["train"]
    left = sorted(p.name for p in (tmp_path / "c").iterdir() if p.name != "hf")
    assert len(left) == 2 and left[1] == left[0] + ".lock"  # the entry and its lock, no .tmp-*


def test_where_the_cache_is(tmp_path, monkeypatch):
    from tunelm.data import cache_root

    monkeypatch.delenv("TUNELM_DATA_CACHE", raising=False)
    monkeypatch.setenv("TUNELM_CACHE", str(tmp_path / "all"))
    assert cache_root() == tmp_path / "all" / "data"
    monkeypatch.setenv("TUNELM_DATA_CACHE", str(tmp_path / "data-only"))
    assert cache_root() == tmp_path / "data-only"
    assert cache_root(tmp_path / "study") == tmp_path / "study"
