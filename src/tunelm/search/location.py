"""Where a study lives, parsed once: "a study directory or a storage URL" (pure; no Optuna, so
any command may import it at no cost).

    locate("runs/my-study")          # Location(url="sqlite:///.../runs/my-study/study.db", ...)
    locate("postgresql://host/db")   # Location(url="postgresql://host/db", directory=None)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DB_FILE = "study.db"


@dataclass(frozen=True)
class Location:
    """A study's storage URL, and its directory when it lives in one (None: a server)."""

    url: str
    directory: Path | None

    @property
    def is_url(self) -> bool:
        return self.directory is None


def is_url(text: str) -> bool:
    """True for any URL (scheme://...): a storage URL, or a remote file a config may name."""
    return "://" in str(text)


def is_storage_url(text: str) -> bool:
    """True for a storage URL (sqlite:///..., postgresql://...), False for a directory path."""
    return is_url(text)


def storage_url(out: str | Path, storage: str | None = None) -> str:
    """`storage`, or the SQLite file of the study directory `out`."""
    return storage or f"sqlite:///{(Path(out) / DB_FILE).resolve()}"


def locate(text: str | Path, storage: str | None = None) -> Location:
    """"A study directory or a storage URL", parsed once: `text` is either; an explicit
    `storage` URL wins over a directory (the directory then holds the trials only)."""
    text = str(text)
    if is_storage_url(text):
        return Location(text, None)
    return Location(storage_url(text, storage), None if storage else Path(text))


def has_study_db(directory: str | Path) -> bool:
    return (Path(directory) / DB_FILE).exists()
