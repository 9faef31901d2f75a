"""Checkpoints a trial resumes from: after a preemption (SIGTERM), a killed worker, or a rerun.

The checkpoint is Trainer's own (`train(resume_from_checkpoint=DIR)` reads it back): the adapter
or weights, optimizer, scheduler, scaler, RNG state of every rank and `trainer_state.json`
(global step, so the data loader skips what was seen), plus `tunelm-checkpoint.json`: the
fingerprint of the config fields that shape training, and the state of our own callbacks (best
eval loss so far, the health guard's moving average, training seconds). One is kept, as
`<trial>/resume`: Trainer writes the new one under `<trial>/hf/`, and it replaces the old by
renames, so a kill at any moment leaves one whole checkpoint (`resume`, or `resume.old` between
the two renames).

When: every `train.checkpoint_minutes` (30 on a GPU unless set; off on a CPU unless set), and at
the first step boundary after SIGTERM (`runner/preempt.py`), after which training stops. On N
ranks every rank takes the same decision at the same step (one all-reduce of two flags), rank 0
writes the checkpoint and each other rank adds its RNG state to it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from transformers import TrainerCallback

from ..errors import ConfigError
from . import preempt

log = logging.getLogger("tunelm.train")

RESUME_DIR = "resume"
STATE_FILE = "tunelm-checkpoint.json"
GPU_DEFAULT_MINUTES = 30.0
SECTIONS = ("model", "lora", "data", "train")  # eval and search do not change the weights
# train fields that change neither the weights nor the data order
NOT_TRAINING = ("checkpoint_minutes", "report_to", "save_best")


def training_fields(cfg) -> dict:
    """The config fields a checkpoint must agree with: what shapes the weights and data order."""
    raw = cfg.to_dict()
    fields = {s: raw[s] for s in SECTIONS}
    fields["train"] = {k: v for k, v in fields["train"].items() if k not in NOT_TRAINING}
    return fields


def fingerprint(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:16]


def interval_seconds(minutes: float | None, device: str) -> float | None:
    """Seconds between periodic checkpoints: `train.checkpoint_minutes`, 30 minutes on a GPU
    when it is empty; None: none (0, or empty on a CPU)."""
    if minutes is None:
        minutes = GPU_DEFAULT_MINUTES if device == "cuda" else 0
    return minutes * 60 if minutes > 0 else None


def find(home: Path) -> Path | None:
    """The checkpoint kept in trial directory `home`, or None."""
    for name in (RESUME_DIR, RESUME_DIR + ".old"):
        if (Path(home) / name / STATE_FILE).exists():
            return Path(home) / name
    return None


@dataclass(frozen=True)
class Resume:
    """Where a trial starts: the trial directory its checkpoints live in, and the checkpoint to
    resume from (None: step 0) with its `tunelm-checkpoint.json`."""

    home: Path
    path: Path | None = None
    state: dict | None = None

    @property
    def step(self) -> int:
        return int((self.state or {}).get("step", 0))


def resume_point(home: Path, cfg) -> Resume:
    """The checkpoint trial directory `home` holds, checked against `cfg` (exit 2 when it was
    saved by another config's training), or none."""
    found = find(home)
    return Resume(Path(home), found, check_matches(found, cfg) if found else None)


def read_state(ckpt: Path) -> dict:
    return json.loads((Path(ckpt) / STATE_FILE).read_text(encoding="utf-8"))


def check_matches(ckpt: Path, cfg) -> dict:
    """The checkpoint's state when it was saved by this config's training; ConfigError (exit
    2, before anything starts) naming the fields that differ when it was not."""
    state = read_state(ckpt)
    fields = training_fields(cfg)
    if state.get("fingerprint") == fingerprint(fields):
        return state
    changed = _differences(state.get("fields") or {}, fields)
    shown = "; ".join(changed[:6]) + (f"; and {len(changed) - 6} more" if len(changed) > 6 else "")
    raise ConfigError(
        f"{ckpt} is the checkpoint of another config (step {state.get('step')}); it differs in "
        f"{shown or 'fields this version cannot name'}. Run with the config that saved it to "
        f"resume, or give another --out (or delete {ckpt}) to start afresh")


def _differences(saved: dict, now: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(saved) | set(now)):
        a, b = saved.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key} {a!r} in the checkpoint, {b!r} now")
    return out


def keep_rows_until(metrics: Path, step: int) -> None:
    """metrics.jsonl without the rows logged after `step` (a killed run logged them after its
    last checkpoint; the resumed run logs them again)."""
    if not metrics.exists():
        return
    rows = [x for x in metrics.read_text(encoding="utf-8").splitlines() if x.strip()]
    kept = [x for x in rows if json.loads(x).get("step", 0) <= step]
    metrics.write_text("".join(x + "\n" for x in kept), encoding="utf-8")


def discard(home: Path) -> None:
    """No checkpoint left in `home` (the run finished: it is not needed any more)."""
    for name in (RESUME_DIR, RESUME_DIR + ".old"):
        shutil.rmtree(Path(home) / name, ignore_errors=True)


class Checkpointer(TrainerCallback):
    """Saves a checkpoint every `interval` seconds and, after SIGTERM, once more before stopping
    training (`preempted`). `home` is the trial directory the checkpoint goes to; `state` gives
    our callbacks' state to keep with it; `rank` > 0: this rank only adds its RNG state."""

    def __init__(self, home: Path, cfg, interval: float | None, state=dict, rank: int = 0):
        self.home, self.interval, self.state, self.rank = Path(home), interval, state, rank
        self.fields = training_fields(cfg)
        self.preempted = False
        self.saves: list[float] = []  # seconds each save took (benchmarks/checkpoint_cost.py)
        self._last = time.monotonic()
        self._saving_since: float | None = None

    def on_train_begin(self, args, state, control, **kw):
        self._last = time.monotonic()

    def on_step_end(self, args, state, control, **kw):
        due = (self.interval is not None and state.global_step < state.max_steps
               and time.monotonic() - self._last >= self.interval)
        term, due = _agree([preempt.requested(), due])
        if not (term or due):
            return
        control.should_save = True
        control.should_log = True  # every step's loss lands in a row before the checkpoint
        self._saving_since = time.monotonic()
        if term:
            self.preempted = True
            control.should_training_stop = True

    def on_save(self, args, state, control, **kw):
        if self._saving_since is None:
            return
        written = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if self.rank > 0:  # its RNG state joins rank 0's checkpoint, then rank 0 publishes
            staged = self.home / "hf" / written.name
            staged.mkdir(parents=True, exist_ok=True)
            for f in written.glob("rng_state_*.pth"):
                shutil.copy2(f, staged / f.name)
            shutil.rmtree(written, ignore_errors=True)
        _barrier()
        if self.rank == 0:
            self._publish(written, state.global_step)
        self.saves.append(time.monotonic() - self._saving_since)
        if self.rank == 0:  # grep-able: benchmarks/checkpoint_cost.py reads the seconds
            log.info("checkpoint | step %d | %.3f s | %s", state.global_step, self.saves[-1],
                     self.home / RESUME_DIR)
        self._last, self._saving_since = time.monotonic(), None

    def _publish(self, written: Path, step: int) -> None:
        info = {"fingerprint": fingerprint(self.fields), "fields": self.fields, "step": step,
                "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "callbacks": self.state()}
        (written / STATE_FILE).write_text(json.dumps(info, default=str), encoding="utf-8")
        current, old = self.home / RESUME_DIR, self.home / (RESUME_DIR + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if current.exists():
            current.rename(old)
        written.rename(current)
        shutil.rmtree(old, ignore_errors=True)


def _agree(flags: list[bool]) -> list[bool]:
    """On N ranks: each flag set on any rank, so every rank saves (and stops) at the same step."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flags
    on = "cuda" if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor([float(f) for f in flags], device=on)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(x) for x in t.tolist()]


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


__all__ = ["Checkpointer", "Resume", "check_matches", "resume_point", "discard", "find", "fingerprint",
           "interval_seconds", "keep_rows_until", "read_state", "training_fields"]
