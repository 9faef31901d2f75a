"""Hide installed packages from a child process, as if they were not installed.

    env = hide_packages(tmp_path, "wandb", "mlflow")
    subprocess.run([sys.executable, "-m", "tunelm", ...], env={**os.environ, **env})

The child starts with a directory on PYTHONPATH holding a `sitecustomize.py` (Python imports it
at start-up, after site-packages are set up) that wraps every finder of `sys.meta_path`: for a
hidden name and its submodules they find nothing, so `importlib.util.find_spec` returns None and
`import` raises ModuleNotFoundError, exactly as where the package is missing; its distribution
metadata (`importlib.metadata.version`) is gone too. Nothing in the parent changes.
"""

from __future__ import annotations

import os
from pathlib import Path

SITECUSTOMIZE = '''\
import re
import sys

HIDDEN = {hidden!r}


def _hidden(name):
    return name.partition(".")[0] in HIDDEN


def _dist_hidden(dist):
    name = re.sub(r"[-_.]+", "_", (dist.metadata["Name"] or "").lower())
    return name in HIDDEN


class _Without:
    """A meta path finder that finds nothing of the hidden packages."""

    def __init__(self, finder):
        self._finder = finder

    def find_spec(self, name, path=None, target=None):
        find = getattr(self._finder, "find_spec", None)
        if _hidden(name) or find is None:
            return None
        return find(name, path, target)

    def find_distributions(self, *args, **kwargs):
        find = getattr(self._finder, "find_distributions", None)
        if find is None:
            return iter(())
        return (d for d in find(*args, **kwargs) if not _dist_hidden(d))

    def __getattr__(self, attr):
        return getattr(self._finder, attr)


sys.meta_path[:] = [_Without(f) for f in sys.meta_path]
for _name in [m for m in sys.modules if _hidden(m)]:
    del sys.modules[_name]
'''


def hide_packages(tmp_path: Path, *modules: str) -> dict[str, str]:
    """The environment (PYTHONPATH) of a child in which `modules` (top-level import names, e.g.
    "wandb") and their distributions cannot be found."""
    folder = Path(tmp_path) / "hide-packages"
    folder.mkdir(parents=True, exist_ok=True)
    hidden = sorted({m.replace("-", "_").lower() for m in modules})
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE.format(hidden=hidden),
                                             encoding="utf-8")
    rest = os.environ.get("PYTHONPATH", "")
    return {"PYTHONPATH": f"{folder}{os.pathsep}{rest}" if rest else str(folder)}
