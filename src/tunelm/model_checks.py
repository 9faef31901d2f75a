"""A model source checked before anything is created: a GGUF file that is a readable GGUF file,
a local directory whose config.json parses, a hub id that can be reached (or is in the cache
when HF_HUB_OFFLINE is set). Loads no weights; each failure is a ModelError (exit 2) that says
what to do next.

    check_source(resolve_source("owner/model"))   # offline and not cached: "no network: ..."
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import ModelError

NO_NETWORK = "no network: give a local path, or set HF_HUB_OFFLINE and a cache"
GGUF_MAGIC = b"GGUF"


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def unreachable(name: str) -> ModelError:
    return ModelError(f"model.name {name!r} is not in the local Hugging Face cache and the hub "
                      f"cannot be reached; {NO_NETWORK} that holds it")


def check_gguf(path: Path) -> None:
    """A GGUF file that opens: not empty, GGUF's magic, a header and tensor table that parse."""
    if path.stat().st_size == 0:
        raise ModelError(f"model.name: GGUF file {path} is empty (0 bytes); download it again")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    reason = f"it starts with {magic!r}, not {GGUF_MAGIC!r}"
    if magic == GGUF_MAGIC:
        try:
            from gguf import GGUFReader
        except ImportError:
            return  # gguf_cache_path names the package to install
        try:
            GGUFReader(str(path))
            return
        except Exception as exc:  # a truncated file fails anywhere in the header or tables
            reason = f"{type(exc).__name__}: {exc}"
    raise ModelError(f"model.name: {path} is not a readable GGUF file ({reason}); it may be "
                     "truncated: download it again")


def check_local(path: Path) -> None:
    config = path / "config.json"
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"model.name {path} could not be loaded: {config} is not valid JSON "
                         f"({exc}); give a directory written by save_pretrained") from None


def check_hub(name: str, revision: str | None = None) -> None:
    """Offline, a hub id must be in the cache (its config.json); online, the download later says
    what went wrong (`load_failure`)."""
    if not offline():
        return
    from huggingface_hub import try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(name, "config.json", revision=revision), str):
        raise unreachable(name)


def check_source(source, revision: str | None = None) -> None:
    """Raise ModelError unless `source` (models.ModelSource) can be loaded, as far as can be
    told without loading it."""
    if source.kind == "gguf":
        check_gguf(Path(source.path) / source.gguf_file)
    elif source.kind == "local":
        check_local(Path(source.path))
    elif source.kind == "hub":
        check_hub(source.path, revision)


def load_failure(name: str, exc: Exception) -> ModelError:
    """The ModelError of a load that failed with `exc` (an OSError or ValueError of
    Transformers)."""
    text = str(exc)
    if offline() or any(w in text.lower() for w in ("offline", "internet connection",
                                                    "connection", "resolve host")):
        return unreachable(name)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return ModelError(f"model.name {name!r} could not be loaded: {first}. Check the id or path, "
                      "your network and HF_TOKEN for gated models.")
