"""The accepted values of the config's choice fields: validation checks against them, the CLI
offers them as `choices=`, and error messages list them."""

from __future__ import annotations

from .search.strategies import NAMES as STRATEGIES
from .tasks.metrics import NAMES as TASK_METRICS

SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "constant_with_warmup", "wsd")
METHODS = ("lora", "qlora", "full")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
SHARDINGS = ("none", "fsdp")  # train.sharding: none (each rank a full copy, DDP) | fsdp
OPTIMIZERS = ("adamw_torch", "adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit")
DATA_FORMATS = ("auto", "messages", "prompt_completion", "text")
BUILTIN_TASKS = ("contracts", "docstrings")
PRUNER_NAMES = ("none", "median", "successive_halving", "hyperband")
REPORTERS = ("none", "wandb", "mlflow", "tensorboard")
EMBEDDED_NAMES = ("smollm2-135m", "embedded", "smollm2-135m-instruct")  # model.name of the default

__all__ = ["BUILTIN_TASKS", "DATA_FORMATS", "EMBEDDED_NAMES", "METHODS", "OPTIMIZERS",
           "PRECISIONS", "PRUNER_NAMES", "REPORTERS", "SCHEDULERS", "SHARDINGS", "STRATEGIES",
           "TASK_METRICS"]
