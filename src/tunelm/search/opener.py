"""Opening a study: to run it (`open_study`: its strategy's sampler and pruner, its directory,
heartbeats) or to read it (`load_study`: no sampler, no pruner, nothing created).

The config travels with the study (a study attribute), so `tunelm search DIR` and
`tunelm worker --storage URL --study NAME` need nothing else; so do the heartbeat and the pbt
poll interval, which every worker of a study must share.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import optuna

from ..config import Config, from_dict
from ..errors import ConfigError
from . import goal
from .drivers import shown
from .pruners import make_pruner
from .space import dims_of
from .storage import (
    DB_FILE,
    has_study_db,
    locate,
    make_storage,
    read_study,
    storage_url,
    study_attrs,
)
from .strategies import strategy_named

CONFIG_ATTR = "tunelm_config"
PRUNING_ATTR = "pruning"  # what the pruners read and why (goal.pruning_note)


def direction_of(cfg: Config) -> str:
    """The study's direction: search.direction, or the objective's default (`goal`)."""
    return goal.direction_of(cfg.search)


def _no_study(out: Path) -> ConfigError:
    return ConfigError(f"no study in {out} (no {DB_FILE}); start one with tunelm search CONFIG "
                       "--out DIR, or give --storage URL --study NAME")


def open_study(cfg: Config | None, out: Path, storage: str | None = None,
               name: str | None = None, worker: int = 0) -> tuple[optuna.Study, Config]:
    """Create the study, or load it (and its stored config when `cfg` is None), to run trials.
    `worker` numbers the processes that share a study (0: the one that started it); each draws
    from its own seed (search.seed + worker): workers with one seed would propose the same
    trials."""
    out = Path(out)
    url = storage_url(out, storage)
    name = name or out.name
    if storage is None and cfg is None and not has_study_db(out):
        raise _no_study(out)
    explicit = cfg is not None
    if explicit:  # what its trials read, checked before the study is made or changed
        # imported here: readers of a study (export, report) must not load the runner
        from ..runner.preflight import check_sources

        check_sources(cfg)
    if explicit and (storage is not None or has_study_db(out)):
        _refuse_another_space(url, name, cfg)
    created = storage is None and not out.exists()
    new_db = storage is None and not (out / DB_FILE).exists()
    if storage is None:
        out.mkdir(parents=True, exist_ok=True)
    try:
        return _open(cfg, out, url, name, worker, explicit)
    except BaseException:  # a study that could not be made (a full disk, Ctrl-C) leaves nothing
        if created:
            shutil.rmtree(out, ignore_errors=True)
        elif new_db:
            (out / DB_FILE).unlink(missing_ok=True)
        raise


def _open(cfg: Config | None, out: Path, url: str, name: str, worker: int,
          explicit: bool) -> tuple[optuna.Study, Config]:
    if cfg is None:
        attrs = study_attrs(make_storage(url), name)
        if attrs is None:
            raise ConfigError(f"no study named {name!r} in {shown(url)}; start one with tunelm search "
                              "CONFIG")
        cfg = from_dict(attrs[CONFIG_ATTR])
    rdb = make_storage(url, cfg.search.heartbeat_seconds)
    strategy = strategy_named(cfg.search.strategy)
    pruner = make_pruner(cfg.search.pruner if strategy.prunes else "none",
                         cfg.train.eval_steps or 1, cfg.train.max_steps,
                         curve=cfg.search.curve_pruner and strategy.prunes)
    study = optuna.create_study(storage=rdb, study_name=name, load_if_exists=True,
                                direction=direction_of(cfg),
                                sampler=strategy.sampler(cfg.search, dims_of(cfg),
                                                         cfg.search.seed + worker),
                                pruner=pruner)
    if CONFIG_ATTR not in study.user_attrs or explicit:
        # the last `tunelm search CONFIG` defines the study (a larger --trials, say);
        # workers read it from here
        study.set_user_attr(CONFIG_ATTR, cfg.to_dict())
        study.set_user_attr("study_dir", str(out.resolve()))
        study.set_user_attr(PRUNING_ATTR, goal.pruning_note(cfg.search.objective,
                                                            direction_of(cfg)))
    return study, cfg


def _describe(d) -> str:
    if d.kind == "categorical":
        return f"one of {list(d.choices)}"
    return f"{d.low:g} .. {d.high:g}{' (log)' if d.log else ''}" + (f" when {d.when}" if d.when
                                                                        else "")


def space_changes(old: list, new: list) -> list[str]:
    """How the dimensions `new` differ from `old` (each a list of space.Dimension), one phrase a
    dimension: added, removed, or its range changed."""
    before, after = {d.name: d for d in old}, {d.name: d for d in new}
    changes = [f"{n} added ({_describe(after[n])})" for n in after if n not in before]
    changes += [f"{n} removed (was {_describe(before[n])})" for n in before if n not in after]
    changes += [f"{n} {_describe(before[n])} -> {_describe(after[n])}" for n in before
                if n in after and before[n] != after[n]]
    return changes


def _refuse_another_space(url: str, name: str, cfg: Config) -> None:
    """A study that has trials continues only in its own search space: trials sampled from two
    spaces mislead every sampler and every report. Raises ConfigError naming the difference."""
    rdb = make_storage(url)
    attrs = study_attrs(rdb, name)
    if not attrs or CONFIG_ATTR not in attrs or not read_study(rdb, name).trials:
        return
    changes = space_changes(dims_of(from_dict(attrs[CONFIG_ATTR])), dims_of(cfg))
    if changes:
        raise ConfigError(f"study {name!r} has trials in another search space: "
                          f"{'; '.join(changes)}. Continue it with its own (tunelm search DIR), "
                          "or start a new study with another --out")


def load_study(target: str | Path, storage: str | None = None,
               name: str | None = None) -> tuple[optuna.Study, Config]:
    """An existing study and its config, to read (report, export, evaluate, transfer, best).
    `target` is a study directory or a storage URL (`storage.locate`); `name` defaults to its
    last path component (the directory's name). Builds no sampler and creates nothing."""
    where = locate(target, storage)
    if where.directory is not None and not has_study_db(where.directory):
        raise _no_study(where.directory)
    name = name or Path(str(target)).name
    rdb = make_storage(where.url)
    attrs = study_attrs(rdb, name)
    if attrs is None or CONFIG_ATTR not in attrs:
        raise ConfigError(f"no study named {name!r} in {shown(where.url)}; start one with tunelm "
                          "search CONFIG")
    return read_study(rdb, name), from_dict(attrs[CONFIG_ATTR])
