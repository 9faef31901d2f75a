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
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from .config_check import report_targets, validate
from .config_choices import (
    BUILTIN_TASKS,
    DATA_FORMATS,
    EMBEDDED_NAMES,
    METHODS,
    OPTIMIZERS,
    PRECISIONS,
    PRUNER_NAMES,
    REPORTERS,
    SCHEDULERS,
    SHARDINGS,
    STRATEGIES,
    TASK_METRICS,
)
from .config_io import (
    PATH_FIELDS,
    apply_overrides,
    build_sections,
    parse_overrides,
    read_config_dict,
    read_yaml,
    resolve_paths,
    yaml_with_help,
)
from .errors import ConfigError
from .search.strategies import help_line as strategy_help

__all__ = [
    "BUILTIN_TASKS", "DATA_FORMATS", "EMBEDDED_NAMES", "METHODS", "OPTIMIZERS",
    "PATH_FIELDS", "PRECISIONS", "PRUNER_NAMES", "REPORTERS", "SCHEDULERS", "SECTIONS",
    "SHARDINGS", "STRATEGIES", "TASK_METRICS", "Config", "ConfigError", "DataConfig", "EvalConfig",
    "LoraConfig", "ModelConfig", "SearchConfig", "TrainConfig", "apply_overrides", "dump_yaml",
    "field_help", "from_dict", "load_config", "parse_overrides", "read_yaml", "report_targets",
    "resolve_paths", "validate",
]


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
    sharding: str = _f("none", "none (every rank holds the whole model: DDP) | fsdp (the ranks "
                               "share out weights, gradients and optimizer state: FSDP2)")
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
    checkpoint_minutes: float | None = _f(
        None, "save a resumable checkpoint (weights, optimizer, scheduler, RNG, step) into "
        "<trial>/resume every N minutes, keeping one; SIGTERM saves one too and a rerun "
        "resumes from it; empty: 30 on a GPU, off on a CPU; 0: off"
    )
    report_to: str | list[str] = _f(
        "none", "experiment trackers every run logs to: none, or any of wandb, mlflow, "
        "tensorboard (a list or a comma-separated string)"
    )


@dataclass
class EvalConfig:
    metric: str = _f(
        "auto", "task metric by greedy generation: auto (json when every answer is JSON, else "
        "none) | json (exact_match of the parsed JSON, parse_rate, per-field accuracy) | exact "
        "(exact_match of the text) | rouge (rougeL F1) | chrf (sacrebleu chrF, 0-100) | accuracy "
        "(label match) | none | package.module:function (your function(predictions, "
        "references) -> dict of named floats)"
    )
    metric_path: str | None = _f(
        None, "directory a package.module:function metric is imported from, after PYTHONPATH "
              "and the working directory (empty: the config file's directory)"
    )
    max_examples: int = _f(60, "generate on at most this many eval examples")
    max_new_tokens: int = _f(128, "generation length cap")
    batch_size: int = _f(16, "generation batch")
    pruning_examples: int | None = _f(
        64, "the intermediate evaluations (the eval loss that pruning, early stopping and the "
        "best checkpoint read) use a fixed seeded subset of this many eval examples; the best "
        "checkpoint is then scored on the whole eval set (empty: all, every time)"
    )
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
    objective: str = _f("eval_loss", "what the study optimises: eval_loss (the run's best) or "
                                     "a score of eval.metric (exact_match, parse_rate, rougeL, "
                                     "chrf, accuracy, or a name your metric function returns)")
    direction: str | None = _f(None, "minimize | maximize (empty: minimize for eval_loss and "
                                     "scores named *loss or *error, maximize for the others)")
    grid_points: int = _f(3, "grid: values per numeric dimension")
    keep_top: int = _f(1, "keep the best adapters of this many trials, delete the others")
    seed: int = _f(0, "sampler seed")
    workers: int = _f(1, "local worker processes, each on its own slice of the GPUs listed in "
                         "CUDA_VISIBLE_DEVICES (train.devices of them); on a CPU the cores are "
                         "shared out among them")
    devices_per_trial: int | None = _f(
        None, "devices of each trial, one slice of the visible GPUs per local worker; its trials "
        "run on them as ranks: sets train.devices (which, when not 1, must equal it); empty: "
        "train.devices")
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
# Loading: YAML -> dict -> overrides -> typed dataclasses -> validation. The work is done in
# config_io.py and config_check.py; these bind it to the dataclasses above.
# ----------------------------------------------------------------------------------------------


def from_dict(raw: dict | None) -> Config:
    """Build and validate a Config from a plain dict (as read from YAML). Raises ConfigError."""
    built, problems = build_sections(raw, _section_classes())
    cfg = Config(**built)
    _devices_follow_the_search(cfg)
    problems += validate(cfg)
    if problems:
        raise ConfigError(problems)
    return cfg


def _devices_follow_the_search(cfg: Config) -> None:
    """`search.devices_per_trial` K is the ranks of every trial of the study: a train.devices
    left at 1 takes it, so the stored config that every worker reads says K too. Another
    train.devices is left as it is, for validation to name the conflict."""
    k = cfg.search.devices_per_trial
    if isinstance(k, int) and not isinstance(k, bool) and k >= 1 and cfg.train.devices == 1:
        cfg.train.devices = k


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
    return from_dict(read_config_dict(path, overrides, base_dir))


def dump_yaml(data: dict, comments: bool = True, header: str | None = None) -> str:
    """YAML of a config dict with each field's help as a trailing comment."""
    return yaml_with_help(data, field_help() if comments else {}, header)
