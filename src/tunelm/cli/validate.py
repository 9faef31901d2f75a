"""`tunelm validate CONFIG`: check a config without running it (`config.load_config`)."""

from __future__ import annotations

from pathlib import Path

from ._common import add_config_args, command


def add(sub) -> None:
    p = command(
        sub, "validate", "check a config without running it",
        """
            tunelm validate presets/llama3-8b-lora.yaml
            tunelm validate my.yaml --print      # show the resolved config with every field's help
        """,
    )
    add_config_args(p)
    p.add_argument("--print", action="store_true", help="print the resolved config")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..config import load_config
    from ..models import resolve_source

    cfg = load_config(args.config, args.overrides)
    source = resolve_source(cfg.model.name)
    for key in ("train", "eval"):
        path = getattr(cfg.data, key)
        if path is not None and not Path(path).expanduser().exists():
            from ..errors import DataError

            raise DataError(f"data.{key}: file {path} does not exist")
    from ..errors import ConfigError
    from ..tasks.metrics import availability_problems

    problems = availability_problems(cfg.eval.metric, cfg.eval.metric_path)
    if problems:  # a metric's missing library, a function that does not import
        raise ConfigError(problems)
    if args.print:
        print(cfg.to_yaml())
    print(f"{args.config}: valid (model: {source.kind} {cfg.model.name}, method {cfg.model.method})")
    return 0
