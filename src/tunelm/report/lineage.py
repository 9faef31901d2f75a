"""The lineage of a population-based training study: which member's weights each member-generation
continued, how it explored, and where its loss ended. Plain data; `html` draws the table."""

from __future__ import annotations

from dataclasses import dataclass, field

from optuna.trial import FrozenTrial

from ..search.pbt import PBT_ATTR
from .trials import finite

LR = "train.learning_rate"


@dataclass
class LineageCell:
    """One member-generation of a population-based training study."""

    member: int
    generation: int
    trial: int
    learning_rate: float | None
    parent: int | None  # the member whose checkpoint it continued (itself unless it exploited)
    explore: dict  # {dimension: "x0.8" | "x1.2" | "resample"} when it exploited
    loss: float | None  # eval loss at the end of its generation
    params: dict = field(default_factory=dict)


def lineage_of(trials: list[FrozenTrial]) -> list[LineageCell]:
    """The member x generation cells of a pbt study (empty for other strategies); a retried
    member-generation shows its latest trial."""
    cells: dict[tuple, LineageCell] = {}
    for t in trials:
        info = t.user_attrs.get(PBT_ATTR)
        if not info:
            continue
        params = t.user_attrs.get("params") or dict(t.params)
        loss = finite(t.user_attrs.get("final_eval_loss"))
        key = (info["member"], info["generation"])
        if key in cells and cells[key].loss is not None and loss is None:
            continue
        cells[key] = LineageCell(info["member"], info["generation"], t.number,
                                 finite(params.get(LR)), info.get("parent"),
                                 dict(info.get("explore") or {}), loss, params)
    return sorted(cells.values(), key=lambda c: (c.member, c.generation))
