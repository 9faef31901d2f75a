"""The whole pipeline of a run's data: read, split, cap, tokenize and pack once, then read the
result from the cache in every later trial (memory-mapped Arrow, not held in RAM)."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from .cache import cache_root, cached, entry_key
from .encode import ensure_chat_template
from .records import Record
from .scan import TEXT_SUFFIXES, scan
from .sources import RAW, Source, load_files, open_source
from .tokenize import pack_dataset, tokenize


class Rows(Sequence):
    """The tokenized examples of a memory-mapped datasets.Dataset as a sequence of dicts
    (input_ids, labels and, when packed, seq_lens): slices give lists, as they did in memory."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self.ds[k] for k in range(*i.indices(len(self)))]
        return self.ds[i]


class RecordList(Sequence):
    """The raw eval examples as Records, read from an Arrow table on demand."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self):
        return 0 if self.ds is None else len(self.ds)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        row = self.ds[i]
        return Record(json.loads(row[RAW]), row["where"])


@dataclass
class PreparedData:
    train: Rows  # tokenized training sequences: dicts of input_ids, labels (, seq_lens)
    eval: Rows  # tokenized eval examples for the eval loss
    eval_records: Sequence[Record]  # every raw eval example, for generation-based task metrics
    stats: dict
    cache_hit: bool = False


def resolve_paths(cfg, work_dir: Path) -> tuple[str, str | None]:
    """The train/eval files; a built-in task writes its files under `work_dir` first."""
    if cfg.train is not None:
        return cfg.train, cfg.eval
    from ..tasks import contracts, docstrings

    task = {"contracts": contracts, "docstrings": docstrings}[cfg.task]
    paths = task.write_dataset(
        work_dir / "data", cfg.task_train_size, cfg.task_eval_size, seed=cfg.seed
    )
    return paths["train"], cfg.eval or paths["eval"]


def read_records(path, cfg=None) -> list[Record]:
    """Every record of a file, directory, saved dataset or hub dataset, in order, in memory
    (for statistics and small eval sets). Raises DataError on malformed input."""
    from .records import drop_none

    if isinstance(path, str) and Path(path).suffix.lower() in TEXT_SUFFIXES and Path(path).is_file():
        return [Record(obj, where) for obj, where in scan(Path(path).expanduser())]
    source = open_source(path, cfg or _Defaults())
    if source.files and all(f.suffix.lower() in TEXT_SUFFIXES for f in source.files):
        return [Record(obj, where) for f in source.files for obj, where in scan(f)]
    ds = source.dataset if source.dataset is not None else load_files(source, cache_root() / "hf")
    return [Record(json.loads(r[RAW]) if RAW in r else drop_none(r), source.where(i))
            for i, r in enumerate(ds)]


class _Defaults:
    subset, split, revision = None, "train", None


def split_indices(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """A seeded hold-out split of n examples: at least one on each side."""
    if n < 2:
        raise DataError(
            f"the training data has {n} example(s); at least 2 are needed to hold out "
            "an eval split (or give data.eval)"
        )
    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_eval = min(n - 1, max(1, round(fraction * n)))
    held = set(order[:n_eval])
    return [i for i in range(n) if i not in held], [i for i in range(n) if i in held]


def split_records(records: list[Record], fraction: float, seed: int) -> tuple[list[Record], list[Record]]:
    """A seeded hold-out split: at least one example on each side."""
    train, held = split_indices(len(records), fraction, seed)
    return [records[i] for i in train], [records[i] for i in held]


def _rows(cfg, train_src: Source, eval_src: Source | None):
    """(train rows of train_src, rows of the eval source, the eval source): the same seeded
    choices as ever, so a study's split does not change with the reader."""
    n = len(train_src.dataset)
    if eval_src is None:
        train_rows, eval_rows = split_indices(n, cfg.eval_fraction, cfg.seed)
        eval_src = train_src
    else:
        train_rows, eval_rows = list(range(n)), list(range(len(eval_src.dataset)))
    if cfg.max_examples is not None and len(train_rows) > cfg.max_examples:
        train_rows = random.Random(cfg.seed + 1).sample(train_rows, cfg.max_examples)
    return train_rows, eval_rows, eval_src


def _raw_rows(src: Source, rows: list[int]):
    """The raw examples `rows` as JSON text with where they came from (for generation)."""
    from datasets import Dataset

    ds = src.dataset.select(rows)
    from .records import drop_none

    raws = [r[RAW] if RAW in r else json.dumps(drop_none(r), default=str) for r in ds]
    return Dataset.from_dict({RAW: raws, "where": [src.where(i) for i in rows]})


def _build(tmp: Path, tokenizer, cfg, train_src: Source, eval_src: Source | None, hf_cache: Path):
    tmp.mkdir(parents=True)
    for src in (train_src, eval_src):
        if src is not None and src.dataset is None:
            load_files(src, hf_cache)
    train_rows, eval_rows, eval_src = _rows(cfg, train_src, eval_src)
    loss_rows = eval_rows[: cfg.max_eval_examples] if cfg.max_eval_examples else eval_rows
    train, train_stats = tokenize(train_src, train_rows, tokenizer, cfg, "train", tmp)
    evals, eval_stats = tokenize(eval_src, loss_rows, tokenizer, cfg, "eval", tmp)
    if cfg.packing:
        train = pack_dataset(train, cfg.max_length)
    if eval_src is train_src:
        eval_stats.files = [f"{train_src.name} (held-out {cfg.eval_fraction:.0%})"]
    train.save_to_disk(str(tmp / "train"))
    evals.save_to_disk(str(tmp / "eval"))
    _raw_rows(eval_src, eval_rows).save_to_disk(str(tmp / "eval_records"))
    stats = {"train": train_stats.as_dict(), "eval": eval_stats.as_dict(), "packed": cfg.packing,
             "train_sequences": len(train)}
    (tmp / "stats.json").write_text(json.dumps(stats, indent=1))
    for f in tmp.glob("*-map*.arrow"):
        f.unlink()


def prepare(tokenizer, cfg, work_dir: Path, *, cache_dir: str | Path | None = None,
            train=None, eval=None) -> PreparedData:
    """Read, split, cap, tokenize and (optionally) pack the data of `cfg` (a DataConfig), or
    read the result of an earlier run with the same data, tokenizer and settings from the
    cache (`cache_dir`, else $TUNELM_DATA_CACHE, else $TUNELM_CACHE/data, else
    ~/.cache/tunelm/data). `train`/`eval` replace `cfg.train`/`cfg.eval` with a
    datasets.Dataset or a list of dicts."""
    from datasets import load_from_disk

    ensure_chat_template(tokenizer)
    root = cache_root(cache_dir)
    if train is None:
        train, eval = resolve_paths(cfg, Path(work_dir))
    train_src = open_source(train, cfg)
    eval_src = open_source(eval, cfg) if eval is not None else (
        open_source(train, cfg, split=cfg.eval_split) if cfg.eval_split else None)
    key = entry_key(train_src.fingerprint, eval_src and eval_src.fingerprint, tokenizer, cfg)
    entry, hit = cached(root, key, lambda tmp: _build(tmp, tokenizer, cfg, train_src, eval_src,
                                                        root / "hf"))
    stats = json.loads((entry / "stats.json").read_text())
    stats["cache"] = {"key": key, "hit": hit}
    return PreparedData(Rows(load_from_disk(str(entry / "train"))),
                        Rows(load_from_disk(str(entry / "eval"))),
                        RecordList(load_from_disk(str(entry / "eval_records"))), stats, hit)
