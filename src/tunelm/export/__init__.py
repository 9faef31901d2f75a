"""`tunelm export`: the best configuration of a study (or a run's) in the format of the tool that
trains with it, with what has no equivalent listed in comments rather than dropped.

    paths = export("runs/contracts", "axolotl")             # -> [Path("axolotl.yaml")]
    paths = export("runs/contracts", "trl", "job/train.py")  # -> train.py and train.json

One module per target: trl, transformers, axolotl, llama_factory. Each has `DEFAULT_NAME` and
`build(source, out) -> Export`; `TARGETS` maps the `--to` names to them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import ConfigError
from ..files import write_text_atomic
from . import axolotl, llama_factory, transformers, trl
from .common import Export, write_task_data
from .source import Source, load_source

log = logging.getLogger("tunelm.export")

TARGETS = {
    "trl": trl,
    "transformers": transformers,
    "axolotl": axolotl,
    "llama-factory": llama_factory,
}


def export(source: str | Path, to: str, out: str | Path | None = None,
           study_name: str | None = None) -> list[Path]:
    """Write the configuration of `source` (a study directory, a storage URL with `study_name`,
    or a run directory) for the tool `to`; returns the paths written, the main file first.

    `out` is the main file (default: the target's file name in the working directory; a
    directory, or a path ending in /: that name inside it). Companion files go beside it. Raises ConfigError (exit
    code 2) for an unknown target, a path that is neither a study nor a run, and a study with
    no finished trial; nothing is written then.
    """
    if to not in TARGETS:
        raise ConfigError(f"--to {to!r} is not a known format; accepted: {', '.join(TARGETS)}")
    target = TARGETS[to]
    src = load_source(source, study_name)
    main = Path(out).expanduser() if out else Path(target.DEFAULT_NAME)
    if main.is_dir() or str(out or "").endswith(("/", "\\")):
        main = main / target.DEFAULT_NAME
    result = target.build(src, main)
    written = []
    for path, text in result.files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        written.append(write_text_atomic(path, text))
    if result.data is not None:
        written += write_task_data(src.cfg, result.data)
    log.info("export %s: %d files, %d settings without an equivalent (see the comments)",
             to, len(written), len(result.notes))
    return written


__all__ = ["TARGETS", "Export", "Source", "export", "load_source"]
