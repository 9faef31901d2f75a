"""Running a transfer: read the proxy study, run the transferred configs in a new study on the
target model, compare the two rank orders."""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path

import optuna
from optuna.trial import TrialState

from ..config import Config, from_dict
from ..errors import ConfigError, TrainingError
from ..files import write_text_atomic
from ..recommend import ModelFacts, model_facts
from ..search.location import is_storage_url
from .result import TransferResult, compare
from .rule import LR, RANK, transfer_params
from .target import target_config, target_space

log = logging.getLogger("tunelm.transfer")


def slug(name: str) -> str:
    """`tiny:hidden=64,layers=2` -> `tiny-hidden-64-layers-2` (for directory names)."""
    return re.sub(r"[^a-z0-9.]+", "-", name.lower().split("/")[-1]).strip("-.") or "model"


def _ranked(study: optuna.Study) -> list:
    """The study's COMPLETE trials, best first."""
    sign = -1 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.value is not None and math.isfinite(t.value)]
    return sorted(done, key=lambda t: (sign * t.value, t.number))


def run_transfer(from_study: str | Path, to_model: str, top: int = 3, fraction: float = 0.2,
                 out: str | Path | None = None, double_rank: bool = False,
                 storage: str | None = None, study_name: str | None = None,
                 overrides: list[str] | None = None, progress: bool = False) -> TransferResult:
    """Run the `top` best configs of the proxy study `from_study` (a directory, or a storage URL
    with `study_name`; `storage` names the URL of a directory's study kept elsewhere) on
    `to_model`, each for `fraction` of its planned steps, in a new study in `out` (default
    `<proxy dir>-to-<model slug>`); writes `out/transfer.json`.

    Raises ConfigError/ModelError (exit 2) for a missing study, too few finished trials, a
    fraction outside (0, 1] or an unknown model; TrainingError when no config finished.
    """
    from ..search.budget import Budget
    from ..search.live import LiveTable
    from ..search.objective import TrialObjective
    from ..search.opener import load_study
    from ..search.space import dims_of
    from ..search.study import keep_top, open_study, storage_url

    text = str(from_study)
    url = _check_request(text, top, fraction, storage, study_name)
    target_facts = model_facts(to_model)  # an unknown model fails here, before any work
    proxy, proxy_cfg = load_study(text, url, study_name)
    ranked = _ranked(proxy)
    facts = (model_facts(proxy_cfg.model.name), target_facts)
    cfg = target_config(proxy_cfg, to_model, top, overrides or ())
    method = cfg.model.method
    configs = _transferred(proxy.study_name, ranked, proxy_cfg, cfg, facts, top, double_rank)
    ratio = configs[0]["explanation"]["learning_rate"]["formula_ratio"]
    raw = cfg.to_dict()
    raw["search"]["space"] = target_space(proxy_cfg, [c["target_params"] for c in configs],
                                          ratio, double_rank)
    cfg = from_dict(raw)

    out = _out_dir(out, text, proxy.study_name, to_model)
    study, cfg = open_study(cfg, out)
    _enqueue(study, configs, fraction,
             f"{url} (study {proxy.study_name})" if url else str(Path(text).resolve()))
    log.info("transfer: %d configs of %s (%s) to %s (%s), %.0f%% of the planned steps each",
             len(configs), proxy.study_name, proxy_cfg.model.name, to_model, method,
             100 * fraction)
    runner = TrialObjective(cfg, dims_of(cfg), out, cfg.search.objective, progress=progress)
    live = LiveTable(Budget(trials=top))
    study.optimize(runner, n_trials=len(configs), callbacks=[live], catch=(Exception,),
                   gc_after_trial=True)
    if runner.fatal is not None:
        raise runner.fatal
    keep_top(study, cfg.search.keep_top)

    result = compare(study, configs, text, out, storage_url(out, None),
                     to_model, method, fraction)
    write_text_atomic(out / "transfer.json", json.dumps(result.as_dict(), indent=2) + "\n")
    if result.winner is None:
        raise TrainingError(f"no transferred config finished on {to_model}; see {out}/trials "
                            f"and {out}/transfer.json")
    return result


def _check_request(text: str, top, fraction, storage: str | None,
                   study_name: str | None) -> str | None:
    """The proxy study's storage URL (None for a study directory), once the request is checked:
    `top` and `fraction` in range, a study name with a URL, a study.db in a directory."""
    if not isinstance(top, int) or top < 1:
        raise ConfigError(f"--top must be a whole number >= 1, got {top!r}")
    if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise ConfigError(f"--fraction must be in (0, 1] (a share of the planned steps), "
                          f"got {fraction!r}")
    url = storage or (text if is_storage_url(text) else None)
    if url is not None and not study_name:
        raise ConfigError(f"{url} is a storage URL: name the study with --study NAME")
    if url is None and not (Path(text) / "study.db").exists():
        raise ConfigError(f"--from {text}: no study there (no study.db); give a study directory "
                          "that `tunelm search` wrote, or a storage URL with --study NAME")
    return url


def _transferred(proxy_name: str, ranked: list, proxy_cfg: Config, cfg: Config,
                 facts: tuple[ModelFacts, ModelFacts], top: int,
                 double_rank: bool) -> list[dict]:
    """The `top` best distinct configs of the proxy study (its finished trials `ranked`, best
    first) as the target runs them, each with its proxy trial, value and params and the
    explanation of the transfer; `facts` are the proxy model's and the target's."""
    proxy_facts, target_facts = facts
    method = cfg.model.method
    base = {LR: proxy_cfg.train.learning_rate}
    if "full" not in (method, proxy_cfg.model.method):
        base[RANK] = proxy_cfg.lora.r
    elif proxy_cfg.model.method == "full" and method != "full":
        base[RANK] = cfg.lora.r  # the target's adapters: the config's rank
    configs, seen = [], set()
    for t in ranked:
        proxy_params = {**base, **t.user_attrs.get("params", t.params)}
        params, why = transfer_params(proxy_params, proxy_facts, target_facts, method,
                                      double_rank, proxy_method=proxy_cfg.model.method,
                                      rslora=cfg.lora.use_rslora)
        key = json.dumps(params, sort_keys=True)
        if key in seen:  # one config on the target: a protocol's final run repeats a probe,
            continue  # and full fine-tuning drops the rank; the better trial stands for it
        seen.add(key)
        configs.append({"proxy_trial": t.number, "proxy_value": t.value,
                        "proxy_fraction": float(t.user_attrs.get("fraction", 1.0)),
                        "proxy_params": proxy_params, "target_params": params,
                        "explanation": why})
        if len(configs) == top:
            break
    if len(configs) < top:
        name = f"study {proxy_name!r}"
        raise ConfigError(
            f"--top {top}: {name} has only {len(configs)} finished trial(s) with distinct "
            f"configs on the target (of {len(ranked)} finished); ask for --top {len(configs)} "
            "or fewer, or let `tunelm search` finish more trials first" if configs else
            f"--top {top}: {name} has no finished trial yet; let `tunelm search` finish some")
    return configs


def _out_dir(out: str | Path | None, text: str, proxy_name: str, to_model: str) -> Path:
    """Where the target study goes (default `<proxy dir>-to-<model slug>`); it must be new."""
    if out is None:
        parent = Path(text) if "://" not in text else Path("runs") / proxy_name
        out = parent.parent / f"{parent.name}-to-{slug(to_model)}"
    out = Path(out)
    if (out / "study.db").exists():
        raise ConfigError(f"--out {out} already holds a study; give --out NEW_DIR")
    return out


def _enqueue(study: optuna.Study, configs: list[dict], fraction: float,
             transfer_from: str) -> None:
    """Mark the new study as a transfer from `transfer_from` and queue every config in it."""
    study.set_user_attr("strategy", "transfer")
    study.set_user_attr("transfer_from", transfer_from)
    for c in configs:
        study.enqueue_trial(c["target_params"], skip_if_exists=False, user_attrs={
            "fixed": c["target_params"], "tag": f"transfer of proxy trial {c['proxy_trial']}",
            "fraction": fraction, "proxy_trial": c["proxy_trial"]})
