"""`tunelm export` and `tunelm recommend` read configs and write text: importing them must not load
the Trainer (seconds of import, and a GPU stack a laptop may not have) nor tunelm's runner."""

import os
import subprocess
import sys

import pytest


def _loaded_modules(module: str) -> set[str]:
    """Every module `import module` loads in a fresh interpreter, from `-X importtime`."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip())
    assert module in names  # the parse found the module itself
    return names


@pytest.mark.parametrize("module", ["tunelm.export", "tunelm.recommend", "tunelm.hf_args"])
def test_import_loads_no_trainer_and_no_runner(module):
    loaded = _loaded_modules(module)
    assert "transformers.trainer" not in loaded
    # nor anything of the training stack: the mapping and the advice are plain Python
    heavy = sorted(m for m in loaded if m.split(".")[0] in ("torch", "transformers", "peft")
                   or m == "tunelm.runner" or m.startswith("tunelm.runner."))
    assert not heavy, f"import {module} loads {heavy}"


def test_recommend_calls_the_runner_from_one_module_only():
    """--measure runs a real trial; the rest of recommend/ never names the runner."""
    import ast
    from pathlib import Path

    import tunelm.recommend

    naming = []
    for path in sorted(Path(tunelm.recommend.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and "runner" in (node.module or "").split("."):
                naming.append(path.name)
    assert naming == ["measure.py"]
