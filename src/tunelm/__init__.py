"""tunelm: hyperparameters for LLM fine-tuning (LoRA, QLoRA, full) without the guesswork."""

__version__ = "0.1.0"
