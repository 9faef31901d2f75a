"""Validation of a typed config: every problem collected at once, each message naming the field,
echoing the value and saying what is accepted (`train.learning_rate must be > 0, got -0.001`).

One function per section; `validate` runs them all in the config's order."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .config_choices import (
    BUILTIN_TASKS,
    DATA_FORMATS,
    METHODS,
    OPTIMIZERS,
    PRECISIONS,
    PRUNER_NAMES,
    REPORTERS,
    SCHEDULERS,
    SHARDINGS,
    STRATEGIES,
)
from .search.goal import LOSS, objective_problems
from .search.strategies import config_problems as strategy_problems
from .tasks.metrics import form_problem as metric_form_problem

if TYPE_CHECKING:
    from .config import (
        Config,
        DataConfig,
        EvalConfig,
        LoraConfig,
        ModelConfig,
        SearchConfig,
        TrainConfig,
    )


def _check(problems: list[str], ok: bool, message: str) -> None:
    if not ok:
        problems.append(message)


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class _Problems(list):
    """The messages found so far, with the checks that add to them."""

    def check(self, ok: bool, message: str) -> None:
        _check(self, ok, message)

    def choice(self, path, value, options) -> None:
        self.check(value in options, f"{path} must be one of {', '.join(options)}, got {value!r}")

    def positive(self, path, value, allow_zero=False, allow_none=False) -> None:
        if value is None and allow_none:
            return
        ok = _num(value) and (value >= 0 if allow_zero else value > 0)
        self.check(ok, f"{path} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")

    def ratio(self, path, value, lo_=0.0, hi=1.0, hi_open=True) -> None:
        ok = _num(value) and lo_ <= value and (value < hi if hi_open else value <= hi)
        bracket = ")" if hi_open else "]"
        self.check(ok, f"{path} must be in [{lo_}, {hi}{bracket}, got {value!r}")


def validate(cfg: Config) -> list[str]:
    """Every problem of a typed config, as messages naming field, value and what is accepted."""
    p = _Problems()
    _model(p, cfg.model)
    _lora(p, cfg.lora)
    _data(p, cfg.data)
    _train(p, cfg.train)
    _search(p, cfg.search, cfg.eval, cfg.train.devices)
    _eval(p, cfg.eval)
    _sharding(p, cfg)
    return list(p)


def _model(p: _Problems, m: ModelConfig) -> None:
    p.check(isinstance(m.name, str) and m.name.strip() != "",
            f"model.name must be set, got {m.name!r}")
    p.choice("model.method", m.method, METHODS)
    p.choice("model.precision", m.precision, PRECISIONS)


def _lora(p: _Problems, lo: LoraConfig) -> None:
    p.positive("lora.r", lo.r)
    p.positive("lora.alpha", lo.alpha)
    p.ratio("lora.dropout", lo.dropout)
    if isinstance(lo.target_modules, list):
        p.check(len(lo.target_modules) > 0, "lora.target_modules must not be an empty list")


def _data(p: _Problems, d: DataConfig) -> None:
    if d.task is not None:
        p.choice("data.task", d.task, BUILTIN_TASKS)
    p.check(
        d.train is not None or d.task is not None,
        "data.train must be set (a JSONL/CSV file or directory), or data.task to a built-in task "
        f"({', '.join(BUILTIN_TASKS)}); try --set data.train=FILE",
    )
    p.choice("data.format", d.format, DATA_FORMATS)
    p.positive("data.task_train_size", d.task_train_size)
    p.positive("data.task_eval_size", d.task_eval_size)
    p.check(isinstance(d.max_length, int) and d.max_length >= 8,
            f"data.max_length must be an integer >= 8, got {d.max_length!r}")
    p.ratio("data.eval_fraction", d.eval_fraction, 0.0, 0.5, hi_open=False)
    p.positive("data.max_examples", d.max_examples, allow_none=True)
    p.positive("data.max_eval_examples", d.max_eval_examples, allow_none=True)
    p.check(isinstance(d.split, str) and d.split.strip() != "",
            f"data.split must be a split name such as train, got {d.split!r}")
    for name in ("subset", "eval_split", "revision"):
        value = getattr(d, name)
        p.check(value is None or (isinstance(value, str) and value.strip() != ""),
                f"data.{name} must be a non-empty name or empty (null), got {value!r}")


def _train(p: _Problems, t: TrainConfig) -> None:
    p.positive("train.learning_rate", t.learning_rate)
    p.check(not _num(t.learning_rate) or t.learning_rate < 1.0,
            f"train.learning_rate must be < 1, got {t.learning_rate!r}")
    p.choice("train.scheduler", t.scheduler, SCHEDULERS)
    p.ratio("train.warmup_ratio", t.warmup_ratio)
    p.ratio("train.wsd_stable_end", t.wsd_stable_end, 0.0, 1.0, hi_open=False)
    if _num(t.warmup_ratio) and _num(t.wsd_stable_end) and t.scheduler == "wsd":
        p.check(t.wsd_stable_end >= t.warmup_ratio,
                f"train.wsd_stable_end ({t.wsd_stable_end}) must be >= train.warmup_ratio "
                f"({t.warmup_ratio})")
    p.positive("train.num_cycles", t.num_cycles)
    p.positive("train.weight_decay", t.weight_decay, allow_zero=True)
    p.positive("train.max_grad_norm", t.max_grad_norm, allow_zero=True)
    p.positive("train.batch_size", t.batch_size)
    p.positive("train.grad_accum", t.grad_accum)
    p.check(isinstance(t.devices, int) and not isinstance(t.devices, bool) and t.devices >= 1,
            f"train.devices must be an integer >= 1, got {t.devices!r}")
    p.positive("train.epochs", t.epochs)
    p.positive("train.max_steps", t.max_steps, allow_none=True)
    p.positive("train.eval_steps", t.eval_steps, allow_none=True)
    p.positive("train.logging_steps", t.logging_steps)
    p.positive("train.early_stopping_patience", t.early_stopping_patience, allow_none=True)
    p.positive("train.early_stopping_threshold", t.early_stopping_threshold, allow_zero=True)
    p.positive("train.divergence_factor", t.divergence_factor, allow_zero=True)
    if _num(t.divergence_factor) and t.divergence_factor != 0:
        p.check(t.divergence_factor > 1,
                f"train.divergence_factor must be > 1 (or 0 to disable), got "
                f"{t.divergence_factor!r}")
    p.positive("train.checkpoint_minutes", t.checkpoint_minutes, allow_zero=True, allow_none=True)
    p.choice("train.optimizer", t.optimizer, OPTIMIZERS)
    _check_report_to(p, t.report_to)


def _check_report_to(p: list[str], value) -> None:
    if not isinstance(value, (str, list)):
        return  # the type check has said so
    items = value.split(",") if isinstance(value, str) else value
    names = [str(x).strip().lower() for x in items]
    accepted = f"none, or any of {', '.join(REPORTERS[1:])}"
    bad = [x for x in names if x not in REPORTERS and x != ""]
    _check(p, not bad, f"train.report_to must be {accepted} (a list or a comma-separated "
           f"string), got {value!r}: unknown {', '.join(repr(x) for x in bad)}")
    _check(p, bad or "none" not in names or len([x for x in names if x]) == 1,
           f"train.report_to: 'none' cannot be combined with trackers, got {value!r}")


def _devices_per_trial(p: _Problems, k, devices) -> None:
    if k is None:
        return
    if not (isinstance(k, int) and not isinstance(k, bool) and k >= 1):
        p.append(f"search.devices_per_trial must be an integer >= 1 or empty, got {k!r}")
        return
    p.check(devices == k,
            f"search.devices_per_trial {k} and train.devices {devices} disagree: every trial runs "
            f"on its worker's slice of {k} devices; accepted: train.devices {k}, or 1 (which "
            "takes search.devices_per_trial)")


def _search(p: _Problems, se: SearchConfig, e: EvalConfig, t_devices=1) -> None:
    p.choice("search.strategy", se.strategy, STRATEGIES)
    p.choice("search.pruner", se.pruner, PRUNER_NAMES)
    p.positive("search.trials", se.trials, allow_none=True)
    p.positive("search.budget_hours", se.budget_hours, allow_none=True)
    p.positive("search.timeout_minutes", se.timeout_minutes, allow_none=True)
    p.positive("search.grid_points", se.grid_points)
    p.positive("search.keep_top", se.keep_top)
    p.positive("search.workers", se.workers)
    _devices_per_trial(p, se.devices_per_trial, t_devices)
    p.positive("search.pbt_population", se.pbt_population)
    p.positive("search.pbt_generation_steps", se.pbt_generation_steps)
    p.positive("search.pbt_generations", se.pbt_generations)
    p.ratio("search.pbt_quantile", se.pbt_quantile, 0.0, 0.5, hi_open=False)
    p.ratio("search.pbt_resample_probability", se.pbt_resample_probability, 0.0, 1.0,
            hi_open=False)
    p.positive("search.heartbeat_seconds", se.heartbeat_seconds)
    p.positive("search.pbt_poll_seconds", se.pbt_poll_seconds)
    p += strategy_problems(se)
    p += objective_problems(se, e)


def _eval(p: _Problems, e: EvalConfig) -> None:
    problem = metric_form_problem(e.metric)
    p.check(problem is None, problem or "")
    p.positive("eval.max_examples", e.max_examples, allow_zero=True)
    p.positive("eval.max_new_tokens", e.max_new_tokens)
    p.positive("eval.batch_size", e.batch_size)
    k = e.pruning_examples
    p.check(k is None or (_num(k) and k >= 1),
            f"eval.pruning_examples must be >= 1 (or empty: every evaluation on the whole eval "
            f"set), got {k!r}")


def _sharding(p: _Problems, cfg: Config) -> None:
    """train.sharding against the rest: FSDP shares the model out among 2 or more ranks, keeps
    bf16/fp32 weights (not bitsandbytes' 4-bit ones), and scores no task by generation."""
    t = cfg.train
    p.choice("train.sharding", t.sharding, SHARDINGS)
    if t.sharding != "fsdp":
        return
    p.check(not _num(t.devices) or t.devices >= 2,
            f"train.sharding fsdp shares the model out among the ranks of a trial: it needs "
            f"train.devices >= 2, got {t.devices!r}; on one device use train.sharding=none")
    p.check(cfg.model.method != "qlora",
            "train.sharding fsdp with model.method qlora is not supported (FSDP shards float "
            "weights, not bitsandbytes' 4-bit ones); use model.method=lora with fsdp, or qlora "
            "with train.sharding=none")
    p.check(cfg.search.objective == LOSS,
            f"search.objective {cfg.search.objective} needs task metrics, which a trial under "
            "train.sharding fsdp does not compute (generation would need every rank); use "
            "search.objective=eval_loss, or score best/ afterwards with tunelm evaluate")


def report_targets(value: str | list[str] | None) -> list[str]:
    """`train.report_to` as a list of tracker names: "mlflow,tensorboard" -> ["mlflow",
    "tensorboard"]; "none" (or empty) -> []. Validation has checked the names."""
    items = value.split(",") if isinstance(value, str) else list(value or [])
    names = [str(x).strip().lower() for x in items]
    return [x for x in names if x and x != "none"]
