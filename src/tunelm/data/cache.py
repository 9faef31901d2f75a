"""The tokenize-once cache: one directory per fingerprint of (data, tokenizer, chat template,
data settings), written whole by one process and renamed into place (atomic), read back
memory-mapped by every later trial and every worker on the same storage.

While one process builds an entry, the others wait on a lock file for it instead of tokenizing
the same data again; if the builder dies, the lock is released and the next one builds it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("tunelm.data")

VERSION = 1  # bump when what an entry holds changes
SETTINGS = ("format", "prompt_column", "completion_column", "text_column", "messages_column",
            "max_length", "completion_only", "packing", "eval_fraction", "max_examples",
            "max_eval_examples", "seed", "subset", "split", "revision", "eval_split")


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """`cache_dir` if given, else $TUNELM_DATA_CACHE, else $TUNELM_CACHE/data, else
    ~/.cache/tunelm/data."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("TUNELM_DATA_CACHE"):
        return Path(os.environ["TUNELM_DATA_CACHE"]).expanduser()
    base = os.environ.get("TUNELM_CACHE", Path.home() / ".cache" / "tunelm")
    return Path(base).expanduser() / "data"


def tokenizer_fingerprint(tokenizer) -> str:
    """What decides the token ids: the whole tokenizer (vocabulary, merges, normalizer, special
    tokens), its chat template and the special token ids it adds."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    body = backend.to_str() if backend is not None else json.dumps(
        sorted(tokenizer.get_vocab().items()))
    h = hashlib.blake2b(digest_size=16)
    for part in (type(tokenizer).__name__, body, tokenizer.chat_template, tokenizer.eos_token_id,
                 tokenizer.bos_token_id, getattr(tokenizer, "add_bos_token", None),
                 getattr(tokenizer, "add_eos_token", None)):
        h.update(str(part).encode() + b"\0")
    return h.hexdigest()


def entry_key(train_fp: str, eval_fp: str | None, tokenizer, cfg) -> str:
    settings = {name: getattr(cfg, name, None) for name in SETTINGS}
    text = json.dumps([VERSION, train_fp, eval_fp, tokenizer_fingerprint(tokenizer), settings],
                      sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


@contextmanager
def _locked(path: Path):
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def cached(root: Path, key: str, build: Callable[[Path], None]) -> tuple[Path, bool]:
    """(directory of entry `key`, whether it was already there). `build(tmp)` writes a new
    entry's files into `tmp`, which is then renamed to the entry's directory."""
    entry = root / key
    if (entry / "done").exists():
        return entry, True
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / f"{key}.lock"):
        if (entry / "done").exists():  # another process built it while this one waited
            return entry, True
        tmp = root / f"{key}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            build(tmp)
            (tmp / "done").write_text("")
            shutil.rmtree(entry, ignore_errors=True)  # a partial entry of a crashed build
            os.rename(tmp, entry)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("data | tokenized into the cache %s", entry)
    return entry, False
