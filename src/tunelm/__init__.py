"""tunelm: hyperparameters for LLM fine-tuning (LoRA, QLoRA, full) without the guesswork.

    import tunelm
    rec = tunelm.recommend("Qwen/Qwen2.5-7B", data="train.jsonl", gpu_memory=80)
    result = tunelm.train(rec.config(), out="runs/first")
    study = tunelm.search(rec.config(), overrides={"search.trials": 8}, out="runs/study")

The functions import their heavy dependencies when called: `import tunelm` stays cheap.
"""

__version__ = "0.1.0"

from .api import TrainResult, diagnose, evaluate, recommend, search, train  # noqa: E402

__all__ = ["TrainResult", "__version__", "diagnose", "evaluate", "recommend", "search", "train"]
