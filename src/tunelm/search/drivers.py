"""A storage URL checked before it is opened: its dialect known, its driver importable, its
SQLite file a database. Each failure is a StorageError (exit 2) that names what to install or
what to do, and never shows the URL's password.

    check_url("postgresql://user:pw@host/db")   # StorageError: ... pip install 'tunelm[postgres]'
"""

from __future__ import annotations

from ..errors import DiskFullError, StorageError

# what to install for a missing driver, by SQLAlchemy (dialect, driver). SQLAlchemy 2.1 reads a
# plain postgresql:// as postgresql+psycopg (psycopg 3); tunelm[postgres] carries psycopg2.
INSTALL = {
    ("postgresql", "psycopg2"): "pip install 'tunelm[postgres]'",
    ("postgresql", "psycopg"): ("pip install 'psycopg[binary]', or pip install 'tunelm[postgres]' "
                                "and write postgresql+psycopg2://"),
}


def with_installed_driver(url: str) -> str:
    """A plain postgresql:// names no driver, and SQLAlchemy 2.1 then takes psycopg (3) while
    tunelm[postgres] installs psycopg2: where psycopg2 is the one installed, the URL names it.

    >>> with_installed_driver("sqlite:///study.db")
    'sqlite:///study.db'
    """
    from importlib.util import find_spec

    plain = "postgresql://"
    if url.startswith(plain) and find_spec("psycopg") is None and find_spec("psycopg2"):
        return "postgresql+psycopg2://" + url[len(plain):]
    return url


def shown(url: str) -> str:
    """`url` with its password masked (***), for messages and logs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not even a URL: show the scheme only
        return url.split("://", 1)[0] + "://..."


def check_url(url: str) -> None:
    """Raise StorageError unless `url` names a dialect SQLAlchemy knows with its driver
    installed."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
        dialect = parsed.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError):
        raise StorageError(f"storage {shown(url)}: not a storage URL SQLAlchemy knows; give "
                           "sqlite:///PATH, postgresql://USER:PASSWORD@HOST/DB or a study "
                           "directory") from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        module = getattr(exc, "name", None) or dialect.driver
        hint = INSTALL.get((parsed.get_backend_name(), parsed.get_driver_name()),
                           f"pip install {module}")
        raise StorageError(f"storage {shown(url)}: its driver {module} is not installed; "
                           f"{hint}, or give a study directory (SQLite)") from None


# SQLite's words when a write failed for want of room (SQLITE_FULL; SQLITE_IOERR, which a file
# size limit gives)
SQLITE_FULL = ("database or disk is full", "disk I/O error")


def unreadable(url: str, exc: Exception) -> StorageError | DiskFullError:
    """The StorageError of a storage that refused to open (`exc`, SQLAlchemy's error); a SQLite
    file that could not be written is not a broken one: DiskFullError (exit 1)."""
    reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if reason in SQLITE_FULL:
            return DiskFullError(f"{path}: the study database could not be written ({reason}): "
                                 "is the disk full? Free space and rerun the same command")
        return StorageError(f"{path}: not a readable study database ({reason}); move it away "
                            "(a new study starts there) or give another directory")
    return StorageError(f"storage {shown(url)} could not be opened ({reason}); check the server, "
                        "the database name and the credentials")
