"""Shared fixtures: tiny configs and small datasets that need no download."""

from __future__ import annotations

import json
import os
import random
import warnings
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore", category=FutureWarning)

ROOT = Path(__file__).resolve().parents[1]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def arithmetic_rows(n: int, seed: int) -> list[dict]:
    """Short chat examples (a few dozen bytes): tiny-model runs take well under a second a step."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        rows.append({"messages": [
            {"role": "user", "content": f"{a}+{b}="},
            {"role": "assistant", "content": json.dumps({"sum": a + b})},
        ]})
    return rows


@pytest.fixture
def small_data(tmp_path) -> dict[str, str]:
    train = write_jsonl(tmp_path / "data" / "train.jsonl", arithmetic_rows(64, 0))
    evals = write_jsonl(tmp_path / "data" / "eval.jsonl", arithmetic_rows(16, 1))
    return {"train": str(train), "eval": str(evals)}


@pytest.fixture
def tiny_config(small_data):
    """A factory: tiny_config(train={...}, lora={...}) -> a validated Config."""
    from tunelm.config import from_dict

    def make(**sections):
        raw = {
            "model": {"name": "tiny", "precision": "fp32"},
            "lora": {"r": 4, "alpha": 32, "dropout": 0.0},
            "data": {"train": small_data["train"], "eval": small_data["eval"], "max_length": 64},
            "train": {"learning_rate": 3e-3, "batch_size": 8, "max_steps": 12, "eval_steps": 4,
                      "warmup_ratio": 0.1, "early_stopping_patience": None},
            "eval": {"metric": "none"},
        }
        for name, values in sections.items():
            raw.setdefault(name, {}).update(values)
        return from_dict(raw)

    return make


def read_metrics(run_dir) -> list[dict]:
    return [json.loads(line) for line in Path(run_dir, "metrics.jsonl").read_text().splitlines()]


def require_real(what: str, present: bool, hint: str) -> None:
    """Real servers and browsers (PostgreSQL, Chromium) are set up by `make test`, which sets
    TUNELM_REAL_SERVICES=1: there a missing one fails the test. Elsewhere (a bare `pytest` on a
    machine without them) the test is skipped with the command that installs it."""
    if present:
        return
    message = f"{what} is not available: {hint}"
    if os.environ.get("TUNELM_REAL_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)
