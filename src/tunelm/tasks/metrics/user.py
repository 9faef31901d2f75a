"""`eval.metric: package.module:function`: the user's own scorer.

The function takes the predictions and the references (two lists of strings, in the same order)
and returns a dict of named floats, such as `{"f1": 0.71, "precision": 0.8}`; any of the names
can be `search.objective`. Its module is imported from `PYTHONPATH` (sys.path) first, then the
working directory, then `eval.metric_path` (by default the config file's directory)."""

from __future__ import annotations

import contextlib
import importlib
import math
import re
import sys
from pathlib import Path

from ...errors import ConfigError

_SPEC = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
RESERVED = ("metric", "n")  # what tunelm adds to every metric's scores
SHAPE = ("package.module:function, a function(predictions, references) returning a dict of "
         "named floats such as {'f1': 0.7}")


def is_user_spec(value) -> bool:
    return isinstance(value, str) and ":" in value


def spec_problem(value: str) -> str | None:
    """What is wrong with the form of `value` (no import), or None."""
    if _SPEC.match(value.strip()):
        return None
    return (f"eval.metric {value!r} is not a function reference: write it as {SHAPE} "
            "(module path with dots, one colon, the function's name)")


@contextlib.contextmanager
def _searched(dirs: list[str]):
    """sys.path with `dirs` after its own entries, for the length of an import."""
    added = [d for d in dirs if d and d not in sys.path]
    sys.path.extend(added)
    try:
        yield
    finally:
        for d in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(d)


def load(spec: str, where: str | None = None):
    """The function `spec` names. Raises ConfigError naming eval.metric, the value and the reason
    (module not found, import failed, no such attribute, not callable)."""
    problem = spec_problem(spec)
    if problem:
        raise ConfigError(problem)
    module_name, _, attr = spec.strip().partition(":")
    dirs = [str(Path.cwd()), *([str(Path(where).expanduser())] if where else [])]
    head = f"eval.metric {spec!r}"
    try:
        with _searched(dirs):
            module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name + ".").startswith(exc.name + "."):
            raise ConfigError(f"{head}: no module named {exc.name!r} on PYTHONPATH, in the "
                              f"working directory or in {where or 'eval.metric_path'}; accepted: "
                              f"{SHAPE}") from None
        raise ConfigError(f"{head}: importing {module_name} failed: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - the user's module raised while importing
        raise ConfigError(f"{head}: importing {module_name} raised "
                          f"{type(exc).__name__}: {exc}") from None
    fn = getattr(module, attr, None)
    if fn is None:
        raise ConfigError(f"{head}: module {module_name} ({getattr(module, '__file__', '?')}) "
                          f"has no {attr!r}; accepted: {SHAPE}")
    if not callable(fn):
        raise ConfigError(f"{head}: {attr} is a {type(fn).__name__}, not callable; accepted: "
                          f"{SHAPE}")
    return fn


def checked(spec: str, result) -> dict[str, float]:
    """`result` as the scores it must be: a dict of str -> finite number. Raises ConfigError
    naming the first thing that is not."""
    head = f"eval.metric {spec!r}: the function returned"
    if not isinstance(result, dict):
        raise ConfigError(f"{head} {type(result).__name__} {result!r:.80}, not a dict; "
                          f"accepted: {SHAPE}")
    out = {}
    for key, value in result.items():
        if not isinstance(key, str) or not key or key in RESERVED:
            raise ConfigError(f"{head} the key {key!r}: a score's name must be a non-empty "
                              f"string other than {', '.join(RESERVED)}")
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok or not math.isfinite(value):
            raise ConfigError(f"{head} {key}={value!r}: a score must be a finite float; "
                              f"accepted: {SHAPE}")
        out[key] = float(value)
    return out


def user_scores(spec: str, predictions: list[str], golds: list[str],
                where: str | None = None) -> dict:
    """The scores of the user's function, checked, with `n` (the examples scored)."""
    fn = load(spec, where)
    return {**checked(spec, fn(list(predictions), list(golds))), "n": len(golds)}
