"""Where a study lives and how it is opened: Optuna's RDB storage (SQLite in the study directory,
or any SQLAlchemy URL Optuna accepts), SQLite's locking, and the workers' heartbeat.

Imports nothing else of tunelm: every opener of a study (search, worker, report, export,
evaluate, transfer) reaches its storage through here.

    where = locate("runs/my-study")                  # a study directory
    where = locate("postgresql://host/db")           # or a storage URL
    study = read_study(where.url, "my-study")        # read-only: no sampler, no directory made
"""

from __future__ import annotations

import warnings

import optuna
from sqlalchemy.exc import SQLAlchemyError

from .drivers import check_url, unreadable, with_installed_driver
from .location import DB_FILE, Location, has_study_db, is_storage_url, locate, storage_url

__all__ = ["DB_FILE", "Location", "has_study_db", "is_storage_url", "locate", "make_storage",
           "read_study", "storage_url", "study_attrs"]


def make_storage(url: str, heartbeat_seconds: int | None = None):
    """RDB storage; with `heartbeat_seconds`, heartbeats: a running trial whose worker was silent
    for three beats is failed and retried once (in its directory: it resumes from the last
    checkpoint there, `search/preemption.py`). Every worker of a study uses the study's value
    (`search.heartbeat_seconds`, stored with it); readers need none."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # SQLite: local worker processes share the file; wait for its lock instead of failing
    sqlite = url.startswith("sqlite")
    engine = {"connect_args": {"timeout": 60}} if sqlite else None
    beats = {}
    if heartbeat_seconds is not None:
        beats = {"heartbeat_interval": heartbeat_seconds, "grace_period": 3 * heartbeat_seconds,
                 "heartbeat_stale_trial_callback":
                     optuna.storages.RetryHeartbeatStaleTrialCallback(
                     # the retry resumes from the dead trial's checkpoint: the same curve
                     max_retry=1, inherit_intermediate_values=True)}
    url = with_installed_driver(url)
    check_url(url)
    try:
        storage = optuna.storages.RDBStorage(url, engine_kwargs=engine, **beats)
    except SQLAlchemyError as exc:  # not a database, a directory, a server that refused
        raise unreadable(url, exc) from None
    if sqlite:
        _serialize_sqlite(storage.engine)
    return storage


def _serialize_sqlite(engine) -> None:
    """Every SQLite transaction takes the write lock when it begins (BEGIN IMMEDIATE).

    Optuna takes a queued trial by reading that it is waiting, then marking it running; SQLite
    has no row locks, so two processes could both read "waiting" and both run it. With the lock
    taken at BEGIN the read and the write are one step. (SQLAlchemy's recipe for pysqlite:
    the driver's own BEGIN is switched off and ours emitted instead.)"""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _no_driver_begin(dbapi_connection, _record):
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections made before the listeners keep the driver's BEGIN


def study_attrs(rdb, name: str) -> dict | None:
    """The user attributes of the study `name` in `rdb`, or None when there is no such study."""
    for summary in optuna.get_all_study_summaries(rdb):
        if summary.study_name == name:
            return summary.user_attrs
    return None


def read_study(rdb, name: str) -> optuna.Study:
    """An existing study, to read: Optuna's own loader with a no-op pruner and the cheapest
    sampler (nothing is sampled), and no directory created."""
    return optuna.load_study(study_name=name, storage=rdb,
                             sampler=optuna.samplers.RandomSampler(),
                             pruner=optuna.pruners.NopPruner())
