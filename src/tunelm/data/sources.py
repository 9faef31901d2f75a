"""Where examples come from, read through Hugging Face `datasets`: local JSONL, JSON, CSV,
Parquet and Arrow files or directories of them, a directory written by `save_to_disk`, a hub
dataset id (with `data.subset`, `data.split`, `data.revision`), a `datasets.Dataset` or a list
of dicts passed from Python.

A source is fingerprinted before it is read where that is cheap (the bytes of local files), so a
tokenization cache hit never reads the data at all.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from .scan import TEXT_SUFFIXES, locations, scan, where_in_file

RAW = "__tunelm_raw__"  # a row kept as JSON text (mixed types that an Arrow column cannot hold)
SUFFIXES = (*TEXT_SUFFIXES, ".parquet", ".arrow")
BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet",
            ".arrow": "arrow"}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass
class Source:
    """One data source: a name for messages, a content fingerprint, and how to read it."""

    name: str
    fingerprint: str
    files: list[Path] = field(default_factory=list)  # local files, in order
    dataset: object = None  # a datasets.Dataset, once read (or as given)
    offsets: list[int] = field(default_factory=list)  # first row of each file
    _lines: dict = field(default_factory=dict)  # file index -> its rows' locations

    def where(self, row: int) -> str:
        """Where row `row` of the source is: file and line, or dataset and row."""
        if not self.files:
            return f"{self.name} row {row}"
        k = max(i for i, start in enumerate(self.offsets) if start <= row)
        if k not in self._lines:
            self._lines[k] = locations(self.files[k])
        return where_in_file(self.files[k], row - self.offsets[k], self._lines[k])


def _digest(*parts) -> str:
    h = hashlib.blake2b(digest_size=16)
    for p in parts:
        h.update(str(p).encode() + b"\0")
    return h.hexdigest()


def _file_digest(files: list[Path]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for f in files:
        h.update(f.suffix.encode() + b"\0")
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 22):
                h.update(chunk)
    return h.hexdigest()


def check_regular(p: Path, spec: str) -> None:
    """A data path must be a directory or a regular file: a named pipe would block the read
    forever, a device never ends. Checked with stat, without opening it."""
    if not p.is_dir() and not p.is_file():
        raise DataError(f"data file {spec} is not a regular file (a pipe, device or socket); "
                        f"save the data to a {', '.join(SUFFIXES)} file and give its path")


def is_local(spec) -> bool:
    """True when `spec` names a local path (as open_source reads it), not a hub dataset id."""
    if not isinstance(spec, str):
        return False
    p = Path(spec).expanduser()
    return (p.exists() or p.is_symlink() or p.is_absolute() or spec.startswith((".", "~"))
            or p.suffix.lower() in SUFFIXES or not HUB_ID.match(spec))


def check_local(cfg) -> None:
    """The local data paths of `cfg` (a DataConfig) exist and are regular files or data
    directories; a hub id is left to the load. Reads nothing."""
    for spec in (cfg.train, cfg.eval):
        if is_local(spec):
            open_source(spec, cfg)


def _local_files(p: Path, spec: str) -> list[Path]:
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in SUFFIXES)
        if not files:
            raise DataError(f"data directory {spec} holds no {', '.join(SUFFIXES)} file")
        return files
    if p.suffix.lower() not in SUFFIXES:
        raise DataError(f"data file {spec}: unsupported extension {p.suffix!r}; use "
                        f"{', '.join(SUFFIXES)}, a save_to_disk directory or a hub dataset id")
    return [p]


def is_saved_dataset(p: Path) -> bool:
    return p.is_dir() and ((p / "dataset_dict.json").exists() or (p / "state.json").exists())


def open_source(spec, cfg, split: str | None = None) -> Source:
    """A Source for `spec` (a path, a hub id, a datasets.Dataset or a list of dicts); `split`
    overrides `cfg.split` (the eval split of the same dataset). Raises DataError."""
    split = split or cfg.split
    if isinstance(spec, list):
        rows = [json.dumps(r, sort_keys=True, default=str) for r in spec]
        return Source("the given examples", _digest(*rows), dataset=_raw_dataset(rows))
    if not isinstance(spec, str):  # a datasets.Dataset
        return Source("the given dataset", spec._fingerprint, dataset=spec)
    p = Path(spec).expanduser()
    if p.exists():
        check_regular(p, spec)
        if is_saved_dataset(p) or (cfg.subset and is_saved_dataset(p / cfg.subset)):
            ds = _load_saved(p, spec, cfg.subset, split)
            return Source(f"{spec} ({split})", ds._fingerprint, dataset=ds)
        if cfg.subset:
            raise DataError(f"data.subset {cfg.subset!r}: {spec} has no directory "
                            f"{cfg.subset}/ saved with save_to_disk")
        files = _local_files(p, spec)
        return Source(spec, _file_digest(files), files=files)
    if p.is_absolute() or spec.startswith((".", "~")) or p.suffix.lower() in SUFFIXES or (
        not HUB_ID.match(spec)
    ):
        raise DataError(f"data file {spec} does not exist")
    ds = _load_hub(spec, cfg, split)
    return Source(f"{spec} ({split})", ds._fingerprint, dataset=ds)


def _raw_dataset(rows: list[str]):
    from datasets import Dataset

    return Dataset.from_dict({RAW: rows})


def _pick_split(obj, what: str, split: str):
    from datasets import DatasetDict

    if not isinstance(obj, DatasetDict):
        return obj
    if split not in obj:
        raise DataError(f"data.split {split!r} is not in {what}: it has "
                        f"{', '.join(sorted(obj))}; set data.split (or data.eval_split)")
    return obj[split]


def _load_saved(p: Path, spec: str, subset: str | None, split: str):
    from datasets import load_from_disk

    if subset and is_saved_dataset(p / subset):
        p, spec = p / subset, f"{spec}/{subset}"
    elif subset:
        raise DataError(f"data.subset {subset!r}: {spec} has no directory {subset}/ saved "
                        "with save_to_disk")
    return _pick_split(load_from_disk(str(p)), spec, split)


def _load_hub(spec: str, cfg, split: str):
    from datasets import get_dataset_split_names, load_dataset

    try:
        names = get_dataset_split_names(spec, cfg.subset, revision=cfg.revision)
    except Exception as exc:  # offline, unknown id, gated, bad subset: say which and why
        raise DataError(f"data {spec!r} is neither a local path nor a dataset on the Hugging "
                        f"Face Hub that could be read here ({type(exc).__name__}: {exc})"
                        [:600]) from None
    if split not in names:
        raise DataError(f"data.split {split!r} is not in {spec}: it has {', '.join(names)}")
    return load_dataset(spec, cfg.subset, split=split, revision=cfg.revision)


def load_files(source: Source, cache_dir: Path):
    """Read a Source's local files into one datasets.Dataset (Arrow, memory-mapped)."""
    from datasets import concatenate_datasets

    parts, source.offsets, start = [], [], 0
    for f in source.files:
        ds = _load_file(f, cache_dir)
        if len(ds) == 0:
            raise DataError(f"data file {f} is empty: it holds no examples")
        source.offsets.append(start)
        start += len(ds)
        parts.append(ds)
    if len(parts) == 1:
        source.dataset = parts[0]
    elif all(p.features == parts[0].features for p in parts):
        source.dataset = concatenate_datasets(parts)
    else:  # files of different columns or types: keep each row as JSON text
        source.dataset = _raw_dataset([json.dumps(r, default=str) for ds in parts
                                       for r in _rows(ds)])
    return source.dataset


def _rows(ds):
    for row in ds:
        yield json.loads(row[RAW]) if RAW in row else row


def _csv_kwargs(f: Path) -> dict:
    """Every CSV column read as text, empty cells as "" (as Python's csv module reads them)."""
    import csv

    from datasets import Features, Value

    try:
        with open(f, newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), None)
    except UnicodeDecodeError:
        header = None
    if not header:
        return {}
    return {"features": Features({name: Value("string") for name in header}),
            "keep_default_na": False, "na_filter": False}


def _check_parquet(f: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pq.read_schema(f)
    except (pa.ArrowException, OSError) as exc:
        reason = str(exc).strip().splitlines()[-1][:300]
        raise DataError(f"{f}: not a readable parquet file ({reason})") from None


def _load_file(f: Path, cache_dir: Path):
    from datasets import load_dataset

    builder = BUILDERS[f.suffix.lower()]
    kwargs = _csv_kwargs(f) if builder == "csv" else {}
    if builder == "parquet":
        _check_parquet(f)  # before datasets, which logs its own error first
    try:
        ds = load_dataset(builder, data_files=str(f), split="train", cache_dir=str(cache_dir),
                          **kwargs)
        # A field of mixed types (a string here, a list there) becomes a `Json` feature, which
        # decodes every string that parses as JSON: a completion '{"a": 1}' would turn into a
        # dict. Such files are read line by line instead.
        if "Json(" not in repr(ds.features):
            return ds
    except Exception as exc:
        if builder not in ("json", "csv"):
            reason = str(exc.__cause__ or exc).strip().splitlines()[-1][:300]
            raise DataError(f"{f}: not a readable {f.suffix[1:]} file ({reason})") from None
    # Malformed JSON/CSV, or mixed types one Arrow column cannot hold: the line-by-line reader
    # names the line, or keeps every row as JSON text.
    return _raw_dataset([json.dumps(obj) for obj, _where in scan(f)])
