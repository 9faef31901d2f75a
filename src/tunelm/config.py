"""The typed config: model, data, lora, train, eval and search, loaded from YAML.

Each field carries a one-line help text; it feeds `tunelm validate --explain`, the comments of the
YAML that tunelm writes, and the error messages. Validation collects every problem and raises them
together, each naming the field, echoing the bad value and saying what is accepted::

    >>> cfg = load_config("presets/tiny.yaml", ["train.learning_rate=3e-4"])
    >>> cfg.train.learning_rate
    0.0003
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import io
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from .errors import ConfigError
from .search.location import is_url
from .search.strategies import NAMES as STRATEGIES
from .search.strategies import config_problems as strategy_problems
from .search.strategies import help_line as strategy_help

SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "constant_with_warmup", "wsd")
METHODS = ("lora", "qlora", "full")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
OPTIMIZERS = ("adamw_torch", "adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit")
DATA_FORMATS = ("auto", "messages", "prompt_completion", "text")
TASK_METRICS = ("auto", "json", "exact", "none")
BUILTIN_TASKS = ("contracts", "docstrings")
PRUNER_NAMES = ("none", "median", "successive_halving", "hyperband")
OBJECTIVES = ("eval_loss", "exact_match")
REPORTERS = ("none", "wandb", "mlflow", "tensorboard")
EMBEDDED_NAMES = ("smollm2-135m", "embedded", "smollm2-135m-instruct")  # model.name of the default


def _f(default: Any, help: str, **kw):
    """A dataclass field with its help line."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


@dataclass
class ModelConfig:
    name: str = _f(
        "smollm2-135m",
        "Hugging Face id, local directory, .gguf file, 'smollm2-135m' (the embedded default) "
        "or 'tiny' (a random test model; 'tiny:hidden=64,layers=2')",
    )
    method: str = _f("lora", "lora | qlora (4-bit NF4, CUDA only) | full fine-tuning")
    precision: str = _f(
        "auto", "auto (bf16 where the hardware has it, bf16 autocast on CPU) | bf16 | fp16 | fp32"
    )
    trust_remote_code: bool = _f(False, "run code shipped with the model (off unless asked)")
    revision: str | None = _f(None, "model revision (branch, tag or commit) on the hub")


@dataclass
class LoraConfig:
    r: int = _f(16, "LoRA rank")
    alpha: float = _f(32.0, "LoRA alpha; the update scales with alpha/r (alpha/sqrt(r) with rsLoRA)")
    dropout: float = _f(0.05, "dropout on the LoRA input")
    target_modules: str | list[str] = _f(
        "all-linear", "'all-linear' or a list of module names such as [q_proj, v_proj]"
    )
    use_rslora: bool = _f(False, "rank-stabilised LoRA: scale by alpha/sqrt(r)")
    use_dora: bool = _f(False, "weight-decomposed LoRA (DoRA)")


@dataclass
class DataConfig:
    train: str | None = _f(
        None, "training data: a JSONL, JSON, CSV, Parquet or Arrow file, a directory of them, a "
        "directory written by save_to_disk, or a Hugging Face Hub dataset id"
    )
    eval: str | None = _f(None, "eval data (as train); when empty, data.eval_split of the "
                                "training data, else a seeded split of it")
    subset: str | None = _f(None, "hub dataset: the subset (configuration) name; save_to_disk: "
                                  "the subdirectory")
    split: str = _f("train", "hub or save_to_disk dataset: the split to train on")
    eval_split: str | None = _f(None, "hub or save_to_disk dataset: the split to evaluate on "
                                      "(e.g. test) when data.eval is empty")
    revision: str | None = _f(None, "hub dataset: the git revision (branch, tag or commit)")
    task: str | None = _f(
        None, "built-in task that writes the data when `train` is empty: contracts (JSON "
        "extraction) or docstrings (natural text from Python's standard library)"
    )
    task_train_size: int = _f(800, "examples the built-in task generates for training")
    task_eval_size: int = _f(60, "examples the built-in task generates for evaluation")
    format: str = _f("auto", "auto | messages | prompt_completion | text")
    prompt_column: str = _f("prompt", "column (or JSON key) of the prompt")
    completion_column: str = _f("completion", "column (or JSON key) of the completion")
    text_column: str = _f("text", "column (or JSON key) of plain text")
    messages_column: str = _f("messages", "JSON key of the chat messages")
    max_length: int = _f(1024, "tokens per example; longer ones are truncated and counted")
    completion_only: bool = _f(True, "compute the loss on completions (assistant turns) only")
    packing: bool = _f(False, "pack several examples into each sequence of max_length tokens")
    eval_fraction: float = _f(0.1, "share of the training data held out when no eval file is given")
    max_examples: int | None = _f(None, "use at most this many training examples (quick probes)")
    max_eval_examples: int | None = _f(None, "use at most this many eval examples for eval loss")
    seed: int = _f(0, "seed of the eval split and the subset")


@dataclass
class TrainConfig:
    learning_rate: float = _f(2e-4, "peak learning rate")
    scheduler: str = _f("cosine", "linear | cosine | cosine_with_restarts | constant_with_warmup | wsd")
    warmup_ratio: float = _f(0.1, "share of the steps spent warming up linearly from 0")
    wsd_stable_end: float = _f(
        0.8, "wsd: the stable phase ends at this share of the steps, then the rate decays to 0"
    )
    num_cycles: int = _f(2, "cosine_with_restarts: number of hard restarts")
    weight_decay: float = _f(0.01, "AdamW weight decay")
    max_grad_norm: float = _f(1.0, "gradient clipping by global norm (0 disables)")
    batch_size: int = _f(8, "per-device micro-batch")
    grad_accum: int = _f(1, "gradient accumulation steps; effective batch = batch_size x grad_accum x devices")
    devices: int = _f(1, "ranks one trial runs on (data parallel): CUDA devices (NCCL), or gloo "
                         "processes on a CPU; more than 1 starts the trial under torchrun")
    epochs: float = _f(1.0, "passes over the training data (ignored when max_steps is set)")
    max_steps: int | None = _f(None, "optimizer steps; overrides epochs")
    eval_steps: int | None = _f(None, "evaluate every N steps; empty: about 12 evaluations per run")
    logging_steps: int = _f(1, "log train loss every N steps")
    early_stopping_patience: int | None = _f(
        3, "stop after this many evaluations without improvement (empty disables)"
    )
    early_stopping_threshold: float = _f(0.001, "smallest eval-loss drop that counts as improvement")
    divergence_factor: float = _f(
        3.0, "stop when the smoothed loss exceeds this multiple of its minimum (0 disables)"
    )
    optimizer: str = _f("adamw_torch", "adamw_torch | adamw_8bit | paged_adamw_8bit | paged_adamw_32bit")
    gradient_checkpointing: bool = _f(False, "recompute activations to save memory")
    seed: int = _f(42, "seed of initialisation and data order")
    save_best: bool = _f(True, "keep the best adapter (or weights) in the trial directory")
    report_to: str | list[str] = _f(
        "none", "experiment trackers every run logs to: none, or any of wandb, mlflow, "
        "tensorboard (a list or a comma-separated string)"
    )


@dataclass
class EvalConfig:
    metric: str = _f(
        "auto", "task metric by greedy generation: auto | json (exact match of parsed JSON and "
        "per-field accuracy) | exact (string match) | none"
    )
    max_examples: int = _f(60, "generate on at most this many eval examples")
    max_new_tokens: int = _f(128, "generation length cap")
    batch_size: int = _f(16, "generation batch")
    baseline: bool = _f(False, "also score the base model before training")


@dataclass
class SearchConfig:
    space: dict = _f({}, "search space: {config.path: {type: float|int|categorical, low, high, "
                         "log, choices, when}}; empty: around this config's own values")
    strategy: str = _f("adaptive", strategy_help())
    trials: int | None = _f(12, "total trials of the study (a resumed study counts the finished)")
    budget_hours: float | None = _f(None, "total device-hours (trial time x devices) of the study")
    timeout_minutes: float | None = _f(None, "wall-clock limit of this search session")
    pruner: str = _f("none", "none | median | successive_halving | hyperband (on eval steps)")
    curve_pruner: bool = _f(True, "stop a trial whose eval curve trails the best finished "
                                  "trial's at the same steps by more than the measured noise "
                                  "(beside search.pruner: whichever stops first)")
    objective: str = _f("eval_loss", "eval_loss (best of the run, minimised) | exact_match (maximised)")
    grid_points: int = _f(3, "grid: values per numeric dimension")
    keep_top: int = _f(1, "keep the best adapters of this many trials, delete the others")
    seed: int = _f(0, "sampler seed")
    workers: int = _f(1, "local worker processes (one per GPU, pinned with CUDA_VISIBLE_DEVICES; "
                         "on a CPU the cores are shared out among them)")
    isolate: bool = _f(False, "run each trial in a child process: all its memory is returned "
                              "after it, at the cost of loading the model for every trial")
    pbt_population: int = _f(4, "pbt: members trained side by side")
    pbt_generation_steps: int = _f(10, "pbt: training steps of one generation (between exploits)")
    pbt_generations: int = _f(3, "pbt: generations; a member trains generations x steps in all "
                                 "(train.max_steps does not apply)")
    pbt_quantile: float = _f(0.25, "pbt: the bottom share copies a member of the top share")
    pbt_resample_probability: float = _f(0.25, "pbt: chance that explore resamples a value "
                                               "instead of scaling it by 0.8 or 1.2")
    heartbeat_seconds: int = _f(20, "seconds between a worker's heartbeats; a trial silent for "
                                    "three is taken as dead and retried once (stored with the "
                                    "study: every worker uses its value)")
    pbt_poll_seconds: float = _f(5.0, "pbt: how often a waiting process looks for queued "
                                      "member-generations (stored with the study)")


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    search: SearchConfig = field(default_factory=SearchConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self, comments: bool = True) -> str:
        return dump_yaml(self.to_dict(), comments=comments)


SECTIONS = {f.name: f.type for f in fields(Config)}


def _section_classes() -> dict[str, type]:
    hints = get_type_hints(Config)
    return {name: hints[name] for name in SECTIONS}


def field_help() -> dict[str, str]:
    """`{"train.learning_rate": "peak learning rate", ...}` for every field."""
    out = {}
    for section, cls in _section_classes().items():
        for f in fields(cls):
            out[f"{section}.{f.name}"] = f.metadata.get("help", "")
    return out


# ----------------------------------------------------------------------------------------------
# Loading: YAML -> dict -> overrides -> typed dataclasses -> validation
# ----------------------------------------------------------------------------------------------


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(known)})"


def _coerce(path: str, value: Any, tp: Any, problems: list[str]) -> Any:
    """Coerce a YAML value to the field's type, or record a problem and return the value."""
    args = get_args(tp)
    if type(None) in args:  # X | None
        if value is None:
            return None
        rest = tuple(a for a in args if a is not type(None))
        tp = rest[0] if len(rest) == 1 else rest
        args = get_args(tp) if len(rest) == 1 else rest
    if str in args and any(get_origin(a) is list for a in args):  # str | list[str]
        if isinstance(value, str) or (
            isinstance(value, list) and value and all(isinstance(v, str) for v in value)
        ):
            return value
        problems.append(f"{path} must be a string or a non-empty list of strings, got {value!r}")
        return value
    if tp is dict:
        if isinstance(value, dict):
            return value
        problems.append(f"{path} must be a mapping, got {value!r}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
            return value.lower() in ("true", "yes")
        problems.append(f"{path} must be true or false, got {value!r}")
        return value
    if tp is int:
        return _number(path, value, int, "an integer", problems)
    if tp is float:
        return _number(path, value, float, "a number", problems)
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        problems.append(f"{path} must be a string, got {value!r}")
        return value
    return value


def _number(path: str, value: Any, cast, what: str, problems: list[str]) -> Any:
    """An int or float field: numbers (whole ones for int) and numeric strings are accepted;
    PyYAML reads "3e-4" as a string, so strings matter."""
    if not isinstance(value, bool):
        if isinstance(value, (int, float)) and (cast is float or float(value).is_integer()):
            return cast(value)
        if isinstance(value, str):
            try:
                return cast(value)
            except ValueError:
                pass
    problems.append(f"{path} must be {what}, got {value!r}")
    return value


def from_dict(raw: dict | None) -> Config:
    """Build and validate a Config from a plain dict (as read from YAML). Raises ConfigError."""
    raw = raw or {}
    problems: list[str] = []
    if not isinstance(raw, dict):
        raise ConfigError(f"the config must be a mapping of sections, got {type(raw).__name__}")
    classes = _section_classes()
    built = {}
    for key in raw:
        if key not in classes:
            problems.append(f"unknown section '{key}'{_suggest(key, list(classes))}")
    for section, cls in classes.items():
        values = raw.get(section) or {}
        if not isinstance(values, dict):
            problems.append(f"{section} must be a mapping of fields, got {values!r}")
            values = {}
        hints = get_type_hints(cls)
        known = [f.name for f in fields(cls)]
        kwargs = {}
        for name, value in values.items():
            if name not in hints:
                problems.append(f"unknown field '{section}.{name}'{_suggest(name, known)}")
                continue
            kwargs[name] = _coerce(f"{section}.{name}", value, hints[name], problems)
        built[section] = cls(**kwargs)
    cfg = Config(**built)
    problems += validate(cfg)
    if problems:
        raise ConfigError(problems)
    return cfg


def _check(problems: list[str], ok: bool, message: str) -> None:
    if not ok:
        problems.append(message)


def validate(cfg: Config) -> list[str]:
    """Every problem of a typed config, as messages naming field, value and what is accepted."""
    p: list[str] = []
    m, lo, d, t, e = cfg.model, cfg.lora, cfg.data, cfg.train, cfg.eval

    def num(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    def choice(path, value, options):
        _check(p, value in options, f"{path} must be one of {', '.join(options)}, got {value!r}")

    def positive(path, value, allow_zero=False, allow_none=False):
        if value is None and allow_none:
            return
        ok = num(value) and (value >= 0 if allow_zero else value > 0)
        _check(p, ok, f"{path} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")

    def ratio(path, value, lo_=0.0, hi=1.0, hi_open=True):
        ok = num(value) and lo_ <= value and (value < hi if hi_open else value <= hi)
        bracket = ")" if hi_open else "]"
        _check(p, ok, f"{path} must be in [{lo_}, {hi}{bracket}, got {value!r}")

    _check(p, isinstance(m.name, str) and m.name.strip() != "", f"model.name must be set, got {m.name!r}")
    choice("model.method", m.method, METHODS)
    choice("model.precision", m.precision, PRECISIONS)

    positive("lora.r", lo.r)
    positive("lora.alpha", lo.alpha)
    ratio("lora.dropout", lo.dropout)
    if isinstance(lo.target_modules, list):
        _check(p, len(lo.target_modules) > 0, "lora.target_modules must not be an empty list")

    if d.task is not None:
        choice("data.task", d.task, BUILTIN_TASKS)
    _check(
        p,
        d.train is not None or d.task is not None,
        "data.train must be set (a JSONL/CSV file or directory), or data.task to a built-in task "
        f"({', '.join(BUILTIN_TASKS)}); try --set data.train=FILE",
    )
    choice("data.format", d.format, DATA_FORMATS)
    positive("data.task_train_size", d.task_train_size)
    positive("data.task_eval_size", d.task_eval_size)
    _check(p, isinstance(d.max_length, int) and d.max_length >= 8,
           f"data.max_length must be an integer >= 8, got {d.max_length!r}")
    ratio("data.eval_fraction", d.eval_fraction, 0.0, 0.5, hi_open=False)
    positive("data.max_examples", d.max_examples, allow_none=True)
    positive("data.max_eval_examples", d.max_eval_examples, allow_none=True)
    _check(p, isinstance(d.split, str) and d.split.strip() != "",
           f"data.split must be a split name such as train, got {d.split!r}")
    for name in ("subset", "eval_split", "revision"):
        value = getattr(d, name)
        _check(p, value is None or (isinstance(value, str) and value.strip() != ""),
               f"data.{name} must be a non-empty name or empty (null), got {value!r}")

    positive("train.learning_rate", t.learning_rate)
    _check(p, not num(t.learning_rate) or t.learning_rate < 1.0,
           f"train.learning_rate must be < 1, got {t.learning_rate!r}")
    choice("train.scheduler", t.scheduler, SCHEDULERS)
    ratio("train.warmup_ratio", t.warmup_ratio)
    ratio("train.wsd_stable_end", t.wsd_stable_end, 0.0, 1.0, hi_open=False)
    if num(t.warmup_ratio) and num(t.wsd_stable_end) and t.scheduler == "wsd":
        _check(p, t.wsd_stable_end >= t.warmup_ratio,
               f"train.wsd_stable_end ({t.wsd_stable_end}) must be >= train.warmup_ratio "
               f"({t.warmup_ratio})")
    positive("train.num_cycles", t.num_cycles)
    positive("train.weight_decay", t.weight_decay, allow_zero=True)
    positive("train.max_grad_norm", t.max_grad_norm, allow_zero=True)
    positive("train.batch_size", t.batch_size)
    positive("train.grad_accum", t.grad_accum)
    _check(p, isinstance(t.devices, int) and not isinstance(t.devices, bool) and t.devices >= 1,
           f"train.devices must be an integer >= 1, got {t.devices!r}")
    positive("train.epochs", t.epochs)
    positive("train.max_steps", t.max_steps, allow_none=True)
    positive("train.eval_steps", t.eval_steps, allow_none=True)
    positive("train.logging_steps", t.logging_steps)
    positive("train.early_stopping_patience", t.early_stopping_patience, allow_none=True)
    positive("train.early_stopping_threshold", t.early_stopping_threshold, allow_zero=True)
    positive("train.divergence_factor", t.divergence_factor, allow_zero=True)
    if num(t.divergence_factor) and t.divergence_factor != 0:
        _check(p, t.divergence_factor > 1,
               f"train.divergence_factor must be > 1 (or 0 to disable), got {t.divergence_factor!r}")
    choice("train.optimizer", t.optimizer, OPTIMIZERS)
    _check_report_to(p, t.report_to)

    se = cfg.search
    choice("search.strategy", se.strategy, STRATEGIES)
    choice("search.pruner", se.pruner, PRUNER_NAMES)
    choice("search.objective", se.objective, OBJECTIVES)
    positive("search.trials", se.trials, allow_none=True)
    positive("search.budget_hours", se.budget_hours, allow_none=True)
    positive("search.timeout_minutes", se.timeout_minutes, allow_none=True)
    positive("search.grid_points", se.grid_points)
    positive("search.keep_top", se.keep_top)
    positive("search.workers", se.workers)
    positive("search.pbt_population", se.pbt_population)
    positive("search.pbt_generation_steps", se.pbt_generation_steps)
    positive("search.pbt_generations", se.pbt_generations)
    ratio("search.pbt_quantile", se.pbt_quantile, 0.0, 0.5, hi_open=False)
    ratio("search.pbt_resample_probability", se.pbt_resample_probability, 0.0, 1.0,
          hi_open=False)
    positive("search.heartbeat_seconds", se.heartbeat_seconds)
    positive("search.pbt_poll_seconds", se.pbt_poll_seconds)
    p += strategy_problems(se)
    if se.objective == "exact_match":
        _check(p, e.metric != "none", "search.objective exact_match needs a task metric: set "
               "eval.metric to json or exact")

    choice("eval.metric", e.metric, TASK_METRICS)
    positive("eval.max_examples", e.max_examples, allow_zero=True)
    positive("eval.max_new_tokens", e.max_new_tokens)
    positive("eval.batch_size", e.batch_size)
    return p


def report_targets(value: str | list[str] | None) -> list[str]:
    """`train.report_to` as a list of tracker names: "mlflow,tensorboard" -> ["mlflow",
    "tensorboard"]; "none" (or empty) -> []. Validation has checked the names."""
    items = value.split(",") if isinstance(value, str) else list(value or [])
    names = [str(x).strip().lower() for x in items]
    return [x for x in names if x and x != "none"]


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


def parse_overrides(items: list[str] | None) -> list[tuple[str, Any]]:
    """`["train.learning_rate=3e-4"]` -> `[("train.learning_rate", 0.0003)]` (YAML-typed values)."""
    out = []
    for item in items or []:
        if "=" not in item:
            raise ConfigError(
                f"--set expects KEY=VALUE such as train.learning_rate=3e-4, got {item!r}"
            )
        key, _, text = item.partition("=")
        key = key.strip()
        if key.count(".") != 1:
            raise ConfigError(
                f"--set key must be SECTION.FIELD such as train.learning_rate, got {key!r}"
            )
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            value = text
        out.append((key, value))
    return out


def apply_overrides(raw: dict, overrides: list[tuple[str, Any]]) -> dict:
    raw = copy.deepcopy(raw or {})
    for key, value in overrides:
        section, name = key.split(".", 1)
        if not isinstance(raw.get(section), dict):
            raw[section] = {}
        raw[section][name] = value
    return raw


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist; see presets/ for examples")
    if path.is_dir():
        raise ConfigError(f"config {path} is a directory; give a YAML file such as presets/tiny.yaml")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections (model, data, ...)")
    return raw


def load_config(path: str | Path | None, overrides: list[str] | None = None,
                base_dir: str | Path | None = None) -> Config:
    """Read a YAML config, apply `--set` overrides, validate everything at once.

    Relative paths in the file (`data.train`, `data.eval`, and `model.name` when it names a local
    model) resolve against `base_dir`, by default the config file's directory, when they exist
    there, else against the working directory (so presets run from the repository root); paths
    given as `--set` overrides resolve against the working directory. A path that exists is
    stored absolute, so the trial's config.yaml and a study's stored config open it from
    anywhere; one that exists nowhere stays as written (loading the data names it).
    """
    raw = read_yaml(path) if path is not None else {}
    cwd = Path.cwd()
    if base_dir is None and path is not None:
        base_dir = Path(path).parent
    roots = [cwd] if base_dir is None else [cwd / Path(base_dir).expanduser(), cwd]
    raw = resolve_paths(raw, roots)
    raw = apply_overrides(raw, parse_overrides(overrides))
    return from_dict(resolve_paths(raw, [cwd]))


# Fields that name a file or directory; model.name only when it is a local path, not a hub id
# or one of tunelm's own names (the embedded default, tiny test models).
PATH_FIELDS = ("model.name", "data.train", "data.eval")


def resolve_paths(raw: dict, roots: list[Path]) -> dict:
    """`raw` (a config dict as read from YAML) with each relative path of PATH_FIELDS made
    absolute against the first of `roots` where it exists; other values are left alone."""
    raw = copy.deepcopy(raw)
    for key in PATH_FIELDS:
        section, name = key.split(".")
        values = raw.get(section)
        if isinstance(values, dict) and isinstance(values.get(name), str):
            values[name] = _resolved(values[name], roots, model=section == "model")
    return raw


def _resolved(value: str, roots: list[Path], model: bool) -> str:
    if model and (value.lower() in EMBEDDED_NAMES or value == "tiny" or value.startswith("tiny:")):
        return value
    path = Path(value)
    if not value.strip() or is_url(value) or path.is_absolute() or value.startswith("~"):
        return value
    for root in roots:
        if (root / path).exists():
            return str((root / path).resolve())
    return value


def dump_yaml(data: dict, comments: bool = True, header: str | None = None) -> str:
    """YAML of a config dict with each field's help as a trailing comment."""
    helps = field_help() if comments else {}
    buf = io.StringIO()
    if header:
        for line in header.strip().splitlines():
            buf.write(f"# {line}\n" if line else "#\n")
    for section, values in data.items():
        if not values:
            buf.write(f"{section}: {{}}\n")
            continue
        buf.write(f"{section}:\n")
        for name, value in values.items():
            text = yaml.safe_dump({name: value}, default_flow_style=True, width=10_000).strip()
            text = text[1:-1] if text.startswith("{") else text
            help_ = helps.get(f"{section}.{name}")
            line = f"  {text}"
            buf.write(f"{line:<44} # {help_}\n" if help_ else f"{line}\n")
    return buf.getvalue()
