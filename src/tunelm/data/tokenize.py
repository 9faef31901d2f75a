"""Tokenizing a whole datasets.Dataset (in `num_proc` processes when it is large), the statistics
of the result, and packing without copying token by token."""

from __future__ import annotations

import json
import logging
import os

from ..errors import DataError
from .encode import IGNORE, DatasetStats, all_lost_error, encode_record
from .records import Record, detect_format
from .sources import RAW, Source

log = logging.getLogger("tunelm.data")

HERE = "\x00row\x00"  # stands for the record's location until an error needs the real one
PARALLEL_FROM = 20_000  # examples; below this, starting worker processes costs more than it saves


def _row_data(batch: dict, k: int) -> dict:
    if RAW in batch:
        return json.loads(batch[RAW][k])
    return {name: column[k] for name, column in batch.items()}


class _Tokenize:
    """The map function (a class, so that worker processes receive it pickled)."""

    def __init__(self, tokenizer, cfg, source: Source, rows: list[int]):
        self.tokenizer, self.cfg, self.source, self.rows = tokenizer, cfg, source, rows

    def __call__(self, batch: dict, indices: list[int]) -> dict:
        out = {"input_ids": [], "labels": [], "n_labels": [], "truncated": []}
        n = self.cfg.max_length
        for k, i in enumerate(indices):
            try:
                _fmt, e = encode_record(self.tokenizer, Record(_row_data(batch, k), HERE), self.cfg)
            except DataError as exc:
                where = self.source.where(self.rows[i])
                raise DataError(str(exc).replace(HERE, where)) from None
            out["input_ids"].append(e.input_ids[:n])
            out["labels"].append(e.labels[:n])
            out["n_labels"].append(sum(label != IGNORE for label in e.labels[1:n]))
            out["truncated"].append(len(e.input_ids) > n)
        return out


def first_format(source: Source, rows: list[int], cfg) -> str:
    if cfg.format != "auto" or not rows:
        return cfg.format
    ds = source.dataset.select(rows[:1])
    data = _row_data(ds[:1], 0)
    try:
        return detect_format(Record(data, HERE), cfg)
    except DataError as exc:
        raise DataError(str(exc).replace(HERE, source.where(rows[0]))) from None


def tokenize(source: Source, rows: list[int], tokenizer, cfg, split: str, work) -> tuple:
    """(tokenized datasets.Dataset with input_ids and labels, DatasetStats) of `rows` of
    `source`: truncated at data.max_length, examples without a label token dropped."""
    import numpy as np
    import pyarrow.compute as pc
    from datasets import Features, Sequence, Value

    if not rows:
        return None, DatasetStats(format=cfg.format, files=[source.name])
    procs = min(8, len(os.sched_getaffinity(0))) if len(rows) >= PARALLEL_FROM else None
    features = Features({"input_ids": Sequence(Value("int32")), "labels": Sequence(Value("int32")),
                         "n_labels": Value("int32"), "truncated": Value("bool")})
    selected = source.dataset.select(rows)
    ds = selected.map(
        _Tokenize(tokenizer, cfg, source, rows), batched=True, batch_size=256, with_indices=True,
        remove_columns=selected.column_names, features=features, num_proc=procs,
        cache_file_name=str(work / f"{split}-map.arrow"), new_fingerprint=f"{split}-{abs(hash(work.name)):x}"[:40],
        desc=f"tokenizing {split} data",
    )
    n_labels = np.asarray(ds.data.column("n_labels").to_numpy())
    lengths = pc.list_value_length(ds.data.column("input_ids")).to_numpy()  # no copy of tokens
    keep = np.flatnonzero(n_labels > 0)
    truncated = int(np.asarray(ds.data.column("truncated").to_numpy(zero_copy_only=False)).sum())
    if len(keep) == 0:
        raise all_lost_error(split, len(rows), cfg.max_length)
    stats = DatasetStats(
        examples=len(keep), truncated=truncated, dropped_no_labels=len(rows) - len(keep),
        tokens=int(lengths[keep].sum()), label_tokens=int(n_labels[keep].sum()),
        max_tokens=int(lengths[keep].max()), format=first_format(source, rows, cfg),
        files=[source.name],
    )
    if truncated:
        log.warning("%s data: %d of %d examples were longer than data.max_length=%d and were "
                    "truncated", split, truncated, len(rows), cfg.max_length)
    ds = ds.remove_columns(["n_labels", "truncated"])
    return (ds if len(keep) == len(ds) else ds.select(keep)), stats


def pack_groups(lengths, max_length: int) -> list[int]:
    """Greedy, in order: the number of examples in each packed sequence of <= max_length."""
    groups, count, used = [], 0, 0
    for n in lengths:
        if count and used + n > max_length:
            groups.append(count)
            count, used = 0, 0
        count += 1
        used += n
    if count:
        groups.append(count)
    return groups


def pack_dataset(ds, max_length: int):
    """Examples concatenated into sequences of at most `max_length` tokens, each with
    `seq_lens` (the examples it holds) so the collator restarts position ids and attention at
    every example. The first label of every example is masked: nothing is predicted across a
    boundary. Built on the flat token arrays (one copy, no Python loop over tokens)."""
    import numpy as np
    import pyarrow as pa
    from datasets import Dataset
    from datasets.table import InMemoryTable

    table = ds.with_format("arrow")[:]
    ids = table.column("input_ids").combine_chunks()
    labels = table.column("labels").combine_chunks()
    lengths = np.asarray(ids.value_lengths())
    starts = np.asarray(ids.offsets)[:-1] - ids.offsets[0].as_py()
    flat_labels = np.array(labels.flatten(), dtype=np.int32)
    flat_labels[starts] = IGNORE
    groups = np.asarray(pack_groups(lengths.tolist(), max_length))
    ex_offsets = np.concatenate([[0], np.cumsum(groups)]).astype(np.int32)
    tok_offsets = np.concatenate([[0], np.cumsum(lengths)])[ex_offsets].astype(np.int32)
    packed = pa.table({
        "input_ids": pa.ListArray.from_arrays(pa.array(tok_offsets), ids.flatten()),
        "labels": pa.ListArray.from_arrays(pa.array(tok_offsets), pa.array(flat_labels)),
        "seq_lens": pa.ListArray.from_arrays(pa.array(ex_offsets),
                                             pa.array(lengths.astype(np.int32))),
    })
    return Dataset(InMemoryTable(packed))
