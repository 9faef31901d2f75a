"""Reading and writing configs: YAML files, `--set` overrides, relative paths made absolute,
YAML values coerced to the fields' types, and YAML written with each field's help.

Nothing here knows the sections: config.py passes its dataclasses and help lines in, so the
schema imports this module and not the other way round."""

from __future__ import annotations

import copy
import difflib
import io
from dataclasses import fields
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from .config_choices import EMBEDDED_NAMES
from .errors import ConfigError
from .search.location import is_url

# Fields that name a file or directory; model.name only when it is a local path, not a hub id
# or one of tunelm's own names (the embedded default, tiny test models).
PATH_FIELDS = ("model.name", "data.train", "data.eval", "eval.metric_path")


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(known)})"


def build_sections(raw: dict | None, classes: dict[str, type]) -> tuple[dict, list[str]]:
    """The section dataclasses (`classes`, by section name) built from a plain dict, and the
    problems found on the way (unknown sections and fields, values of the wrong type).
    Raises ConfigError when `raw` is not a mapping at all."""
    raw = raw or {}
    problems: list[str] = []
    if not isinstance(raw, dict):
        raise ConfigError(f"the config must be a mapping of sections, got {type(raw).__name__}")
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
    return built, problems


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


def read_config_dict(path: str | Path | None, overrides: list[str] | None = None,
                     base_dir: str | Path | None = None) -> dict:
    """The plain dict `load_config` builds its Config from: the YAML file (if any) with its
    relative paths resolved (see `load_config`), then the `--set` overrides, theirs resolved
    against the working directory."""
    raw = read_yaml(path) if path is not None else {}
    cwd = Path.cwd()
    if base_dir is None and path is not None:
        base_dir = Path(path).parent
    roots = [cwd] if base_dir is None else [cwd / Path(base_dir).expanduser(), cwd]
    raw = resolve_paths(raw, roots)
    raw = apply_overrides(raw, parse_overrides(overrides))
    return _metric_beside_config(resolve_paths(raw, [cwd]), base_dir)


def _metric_beside_config(raw: dict, base_dir) -> dict:
    """A `module:function` eval.metric is also looked for in the config's directory: it goes
    into eval.metric_path (unless set), which travels with the config to every trial."""
    section = raw.get("eval")
    if base_dir is None or not isinstance(section, dict):
        return raw
    if ":" in str(section.get("metric") or "") and section.get("metric_path") is None:
        section["metric_path"] = str((Path.cwd() / Path(base_dir).expanduser()).resolve())
    return raw


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


def yaml_with_help(data: dict, helps: dict[str, str], header: str | None = None) -> str:
    """YAML of a config dict with `helps[section.field]` as each field's trailing comment."""
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
