"""Data: read examples through Hugging Face `datasets`, tokenize them once into a cache, and
batch them (with packing that does not leak between examples).

    records.py   one example's shape (messages, prompt/completion, text) and its validation
    scan.py      line-by-line JSONL/JSON/CSV reading: file:line in every error message
    sources.py   files, directories, save_to_disk, hub ids, Python objects -> datasets.Dataset
    encode.py    the chat template, completion-only labels, one example at a time
    tokenize.py  a whole dataset (num_proc when large), its statistics, packing
    cache.py     the tokenize-once cache: fingerprint, lock, atomic rename
    prepare.py   the pipeline a run calls: prepare() -> PreparedData
    collate.py   padding, position ids of packed sequences, the Trainer's dataset
"""

from .cache import cache_root, tokenizer_fingerprint
from .collate import Collator, ListDataset
from .encode import (
    IGNORE,
    DatasetStats,
    Encoded,
    encode,
    encode_records,
    ensure_chat_template,
    pack,
    prompt_text,
    render_chat,
)
from .prepare import (
    PreparedData,
    RecordList,
    Rows,
    prepare,
    read_records,
    resolve_paths,
    split_indices,
    split_records,
)
from .records import ROLES, Record, detect_format, to_messages, tools_of
from .sources import Source, check_local, open_source

__all__ = [
    "IGNORE", "ROLES", "Collator", "DatasetStats", "Encoded", "ListDataset", "PreparedData",
    "Record", "RecordList", "Rows", "Source", "cache_root", "detect_format", "encode", "encode_records",
    "check_local", "ensure_chat_template", "open_source", "pack", "prepare", "prompt_text", "read_records",
    "render_chat", "resolve_paths", "split_indices", "split_records", "to_messages",
    "tokenizer_fingerprint", "tools_of",
]
