"""`protocol`: the staged minimum viable protocol (`search/protocol.py` decides; this drives it).

Its cost is defined here once, from the stages the protocol runs (`stages`): `--dry-run`'s
estimate, its plan text and recommend's budget sketch all read it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...errors import SearchError
from ..protocol import LR, RANK, WARMUP, Protocol
from .base import SearchStrategy

if TYPE_CHECKING:
    from ...config import Config
    from ..dimensions import Dimension
    from .base import Session

log = logging.getLogger("tunelm.search")

@dataclass(frozen=True)
class Stage:
    """One stage of the protocol: its trials, each on `fraction` of the planned steps."""

    key: str  # a short name (recommend's budget sketch keys its hours by it)
    trials: int
    fraction: float
    always: bool  # False: only when the condition in `what` holds
    what: str

    @property
    def runs(self) -> float:
        """Full-run equivalents."""
        return self.trials * self.fraction


def protocol_of(learning_rate: float, warmup_ratio: float, rank: int | None) -> Protocol:
    """The protocol's state machine around a start (`rank` None: full fine-tuning, no rank)."""
    base = {LR: learning_rate, WARMUP: warmup_ratio}
    if rank is not None:
        base[RANK] = rank
    return Protocol(base, tuned_rank=rank is not None)


def stages(proto: Protocol) -> list[Stage]:
    """What the protocol runs, stage by stage, as `Protocol.propose` proposes it."""
    f, n = proto.probe_fraction, proto.decade_points
    out = [Stage("probe_runs", n, f, True, f"{n} learning rates over a decade")]
    if proto.tuned_rank and RANK in proto.base:
        # rank r already ran in the learning-rate stage: one probe, at 2r
        out.append(Stage("rank_check", 1, f, True, "rank 2r against r"))
    warmups = [w for w in proto.warmups if w != proto.base.get(WARMUP)]
    if warmups:
        out.append(Stage("warmup_check", len(warmups), f, False,
                         f"warmup {' vs '.join(f'{w:g}' for w in warmups)} if the loss was spiky"))
    out.append(Stage("lr_retry", n, f, False, "a decade lower if every rate diverged"))
    out.append(Stage("final_run", 1, 1.0, True, "the final run"))
    return out


def stages_for(method: str) -> list[Stage]:
    """The protocol's stages for a fine-tuning `method` before a config exists (recommend's
    budget sketch): the rank stage only for adapters; warmup probes both values."""
    return stages(protocol_of(1.0, 0.0, None if method == "full" else 1))


def run_equivalents(proto: Protocol) -> tuple[float, float]:
    """(fewest, most) full-run equivalents of the protocol."""
    all_stages = stages(proto)
    return (round(sum(s.runs for s in all_stages if s.always), 6),
            round(sum(s.runs for s in all_stages), 6))


class ProtocolSearch(SearchStrategy):
    name = "protocol"
    help = ("the staged protocol: 3 learning rates on 20% of the steps, rank r vs 2r, warmup "
            "only if the loss was spiky, the final run")
    stop_reason = "protocol finished"
    counts_trials = False  # its stages decide how many trials; hours and timeout still apply
    workers_may_join = False
    local_workers = False
    why_one_process = "it runs its stages from one process"

    @staticmethod
    def protocol(cfg: Config) -> Protocol:
        rank = cfg.lora.r if cfg.model.method != "full" else None
        return protocol_of(cfg.train.learning_rate, cfg.train.warmup_ratio, rank)

    def run_equivalents(self, cfg: Config, dims: list[Dimension]) -> tuple[float, float]:
        return run_equivalents(self.protocol(cfg))

    def plan(self, cfg: Config, dims: list[Dimension]) -> str:
        proto = self.protocol(cfg)
        probes = [s.what for s in stages(proto) if s.fraction < 1]
        lo, hi = run_equivalents(proto)
        return (f"plan: {', '.join(probes)}, each on {proto.probe_fraction:.0%} of the steps; "
                f"then the final run: {lo:g} to {hi:g} full runs")

    def drive(self, session: Session) -> None:
        proto = self.protocol(session.cfg)
        # what the protocol does not tune (weight decay, dropout, ...) stays at the config's value
        held = session.held_values()
        while not session.stopped():
            todo = proto.propose(session.curves())
            if todo is None:
                break
            if not todo:
                raise SearchError("the protocol is waiting on trials another process is "
                                  "running; run it from one `tunelm search` process")
            for s in todo:
                session.enqueue({**held, **s.params}, s.tag, s.fraction)
            session.run_queued(len(todo))
        for line in proto.log:
            log.info("protocol: %s", line)
