"""The values of `tunelm recommend`: what is asked (`Request`), one recommended value with its
reason and source (`Advice`), and the whole answer (`Recommendation`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..config import Config, from_dict
from . import sources as S

if TYPE_CHECKING:
    from .facts import ModelFacts
    from .gather import DatasetFacts
    from .memory import MemoryEstimate

TASK_TYPES = ("instruction", "classification", "code", "style")


def cite(source: str) -> str:
    """The full citation of a source key (see sources.SOURCES); other text is returned as is."""
    return S.SOURCES.get(source, source)


@dataclass
class Advice:
    """One recommended value, why, and from where; `others` lists what other sources say."""

    value: Any
    reason: str
    source: str
    others: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        d = {"value": self.value, "reason": self.reason, "source": cite(self.source)}
        if self.others:
            d["other_sources"] = [{**o, "source": cite(o["source"])} for o in self.others]
        return d


@dataclass
class Request:
    model: str
    data: str | None = None
    examples: int | None = None
    avg_tokens: float | None = None
    method: str = "lora"
    gpus: int | None = None  # None: detect (0 means CPU)
    gpu_memory: float | None = None  # GiB per GPU (RAM on CPU); None: detect
    task_type: str = "instruction"
    alpha: float | None = None
    rank: int | None = None
    use_rslora: bool = False
    effective_batch: int | None = None
    throughput: float | None = None  # measured tokens/s (from --measure)


@dataclass
class Recommendation:
    request: Request
    model: ModelFacts
    dataset: DatasetFacts
    advice: dict[str, Advice]
    search_space: dict
    memory: MemoryEstimate
    budget: dict
    notes: list[str]

    def config_dict(self) -> dict:
        raw: dict = {}
        for key, adv in self.advice.items():
            section, name = key.split(".", 1)
            raw.setdefault(section, {})[name] = adv.value
        raw.setdefault("search", {})["space"] = self.search_space
        return raw

    def config(self) -> Config:
        return from_dict(self.config_dict())

    def as_dict(self) -> dict:
        return {
            "model": self.model.__dict__,
            "dataset": self.dataset.__dict__,
            "config": self.config_dict(),
            "advice": {k: v.as_dict() for k, v in self.advice.items()},
            "search_space": self.search_space,
            "memory": self.memory.as_dict(),
            "budget": self.budget,
            "notes": self.notes,
        }
