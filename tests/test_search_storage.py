"""Where a study lives and how it is opened: one parser for a directory or a URL, a read-only
opener that builds no sampler and creates nothing, and the heartbeat stored with the study."""

import pytest

from tunelm.config import from_dict
from tunelm.errors import ConfigError
from tunelm.search.location import is_storage_url, locate
from tunelm.search.opener import load_study, open_study


def cfg_of(**search):
    return from_dict({"data": {"task": "contracts"}, "search": {"strategy": "random", **search}})


def test_a_directory_or_a_url_parsed_once(tmp_path):
    assert is_storage_url("postgresql://u@h/db") and not is_storage_url("runs/study")
    where = locate(tmp_path / "s")
    assert where.directory == tmp_path / "s"
    assert where.url == f"sqlite:///{(tmp_path / 's' / 'study.db').resolve()}"
    assert locate("postgresql://u@h/db") == locate("postgresql://u@h/db", "sqlite:///x.db")
    assert locate("postgresql://u@h/db").is_url
    assert locate(tmp_path / "s", "mysql://h/db").url == "mysql://h/db"  # --storage wins


def test_the_heartbeat_is_the_studys(tmp_path):
    """Every worker of a study beats at the study's interval: a worker that opens it without a
    config reads the interval from the stored config."""
    study, _ = open_study(cfg_of(heartbeat_seconds=7), tmp_path / "s")
    assert study._storage._backend.heartbeat_interval == 7
    assert study._storage._backend.grace_period == 21
    joined, cfg = open_study(None, tmp_path / "s", worker=3)
    assert cfg.search.heartbeat_seconds == 7
    assert joined._storage._backend.heartbeat_interval == 7


@pytest.mark.parametrize("field, value, message", [
    ("heartbeat_seconds", 0, "search.heartbeat_seconds must be > 0, got 0"),
    ("pbt_poll_seconds", -1.0, "search.pbt_poll_seconds must be > 0, got -1.0"),
])
def test_intervals_are_validated(field, value, message):
    with pytest.raises(ConfigError, match=message):
        cfg_of(**{field: value})


def test_reading_a_study_builds_no_sampler_and_creates_nothing(tmp_path):
    open_study(cfg_of(strategy="grid", trials=2), tmp_path / "s")
    study, cfg = load_study(tmp_path / "s")
    assert cfg.search.strategy == "grid" and study.study_name == "s"
    assert type(study.sampler).__name__ == "RandomSampler"  # not the grid's: nothing is sampled
    assert type(study.pruner).__name__ == "NopPruner"
    with pytest.raises(ConfigError, match="no study in"):
        load_study(tmp_path / "missing")
    assert not (tmp_path / "missing").exists()
    url = f"sqlite:///{tmp_path / 's' / 'study.db'}"
    assert load_study(url, name="s")[1].search.strategy == "grid"
    with pytest.raises(ConfigError, match="no study named 'other'"):
        load_study(url, name="other")


def test_a_plain_postgresql_url_uses_the_driver_tunelm_postgres_installs(monkeypatch):
    """SQLAlchemy 2.1 reads postgresql:// as psycopg 3; tunelm[postgres] installs psycopg2."""
    import importlib.util

    from tunelm.search.drivers import with_installed_driver

    installed = {"psycopg2"}
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name: object() if name in installed else None)
    url = "postgresql://me:pw@db/tunelm"
    assert with_installed_driver(url) == "postgresql+psycopg2://me:pw@db/tunelm"
    assert with_installed_driver("postgresql+pg8000://db/x") == "postgresql+pg8000://db/x"
    installed.add("psycopg")  # psycopg 3 installed: SQLAlchemy's own choice stands
    assert with_installed_driver(url) == url
