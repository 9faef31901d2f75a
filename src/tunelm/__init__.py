"""tunelm: hyperparameters for LLM fine-tuning (LoRA, QLoRA, full) without the guesswork.

    import tunelm
    rec = tunelm.recommend("Qwen/Qwen2.5-7B", data="train.jsonl", gpu_memory=80)
    result = tunelm.train(rec.config(), out="runs/first")
    study = tunelm.search(rec.config(), overrides={"search.trials": 8}, out="runs/study")

The functions import their heavy dependencies when called: `import tunelm` stays cheap.
"""

import sys
import types

__version__ = "0.1.0"

from .api import TrainResult, diagnose, evaluate, recommend, search, train  # noqa: E402

__all__ = ["TrainResult", "__version__", "diagnose", "evaluate", "recommend", "search", "train"]

# Four of the API's names are also the names of modules (tunelm.search, tunelm.recommend,
# tunelm.diagnose are packages, tunelm.evaluate a module). Importing one sets it as an attribute
# of this package, which would hide the function: `tunelm.search(...)` would work until the first
# search imported tunelm.search, then raise "'module' object is not callable". So such a module,
# when it is set here, becomes callable as the API function of its name; `tunelm.search.study`,
# `from tunelm.search import run_search` and monkeypatching by dotted name work as before.
_API = {"search": search, "recommend": recommend, "diagnose": diagnose, "evaluate": evaluate}


def _callable_module(module: types.ModuleType, function) -> None:
    class _Callable(type(module)):
        def __call__(self, *args, **kwargs):
            return function(*args, **kwargs)

    _Callable.__name__ = f"{function.__name__}_module"
    module.__class__ = _Callable


class _Package(types.ModuleType):
    def __setattr__(self, name, value):
        if name in _API and isinstance(value, types.ModuleType) and not callable(value):
            _callable_module(value, _API[name])
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
for _name, _function in _API.items():  # a module imported before this line (by .api)
    _module = sys.modules.get(f"{__name__}.{_name}")
    if _module is not None:
        _callable_module(_module, _function)
        globals()[_name] = _module
del _name, _function, _module
