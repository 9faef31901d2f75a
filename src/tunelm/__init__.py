"""tunelm: hyperparameters for LLM fine-tuning (LoRA, QLoRA, full) without the guesswork.

    import tunelm
    rec = tunelm.recommend("Qwen/Qwen2.5-7B", data="train.jsonl", gpu_memory=80)
    result = tunelm.train(rec.config(), out="runs/first")
    study = tunelm.search(rec.config(), overrides={"search.trials": 8}, out="runs/study")

The functions are those of `tunelm.api`. `search`, `recommend`, `evaluate` and `diagnose` are
also the names of subpackages, and importing a subpackage rebinds the package's attribute to it;
so those four subpackages are imported here and made callable (calling one calls the API
function of its name), which keeps `tunelm.search.study` and `tunelm.search(...)` both working.
"""

import importlib
import types

__version__ = "0.1.0"

from . import api  # noqa: E402
from .api import TrainResult, train  # noqa: E402


class _CallableModule(types.ModuleType):
    """A subpackage that is also the API function of the same name."""

    def __call__(self, *args, **kwargs):
        return getattr(api, self.__name__.rsplit(".", 1)[1])(*args, **kwargs)


for _name in ("search", "recommend", "evaluate", "diagnose"):
    importlib.import_module(f".{_name}", __name__).__class__ = _CallableModule
del _name

__all__ = ["TrainResult", "__version__", "diagnose", "evaluate", "recommend", "search", "train"]
