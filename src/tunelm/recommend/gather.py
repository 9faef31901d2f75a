"""The facts a recommendation starts from, gathered here and nowhere else (this is recommend's
I/O): the dataset (read and tokenized, or described by --examples/--avg-tokens), the hardware
(GPUs and their memory, or the machine's RAM), and the model's tokenizer when it is on this
machine. The model's shapes are `facts.model_facts`. The rules (`rules`) read only these values.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import EMBEDDED_NAMES
from ..errors import ConfigError
from . import sources as S
from .advice import Request
from .memory import GIB


@dataclass
class DatasetFacts:
    examples: int
    avg_tokens: float
    p95_tokens: int
    source: str
    path: str | None = None
    task: str | None = None


@dataclass(frozen=True)
class Hardware:
    gpus: int
    memory_gib: float  # per device: a GPU's memory, or the machine's RAM
    on_gpu: bool


def dataset_facts(req: Request, tokenizer=None) -> DatasetFacts:
    """The dataset of `req`: its file read (and tokenized when a tokenizer is given), the
    built-in task for the embedded model without data, or the figures given on the command
    line. Raises ConfigError (no data described) or DataError (a bad file)."""
    if req.data is None:
        if req.examples is None:
            if req.model.lower() in EMBEDDED_NAMES:
                return _contracts_facts(tokenizer)
            raise ConfigError(
                "give --data PATH (a JSONL/CSV file or directory), or --examples N "
                "--avg-tokens T to describe a dataset you have not written yet"
            )
        if req.examples < 1:
            raise ConfigError(f"--examples must be >= 1, got {req.examples}")
        avg = req.avg_tokens or S.DEFAULT_AVG_TOKENS
        if avg <= 0:
            raise ConfigError(f"--avg-tokens must be > 0, got {req.avg_tokens}")
        return DatasetFacts(req.examples, avg, int(avg * S.P95_OVER_MEAN),
                            "--examples/--avg-tokens")
    from ..config import DataConfig
    from ..data import detect_format, read_records, to_messages

    records = read_records(req.data)  # DataError (exit 2) on a missing, empty or bad file
    cfg = DataConfig(train=req.data)
    items = [to_messages(rec, detect_format(rec, cfg), cfg) for rec in records]
    how = ("tokenized" if tokenizer is not None
           else f"estimated at {S.CHARS_PER_TOKEN} characters per token")
    avg, p95 = _length_stats(tokenizer, items)
    return DatasetFacts(len(records), avg, p95, f"{req.data} ({how})", path=req.data)


def _length_stats(tokenizer, items: list) -> tuple[float, int]:
    """(mean, 95th percentile) of the examples' lengths in tokens; without a tokenizer, estimated
    from characters."""
    from ..data import encode, ensure_chat_template

    if tokenizer is not None:
        ensure_chat_template(tokenizer)
    lengths = []
    for item in items:
        if tokenizer is None:
            text = item if isinstance(item, str) else " ".join(m["content"] for m in item)
            lengths.append(max(1, len(text) // S.CHARS_PER_TOKEN + S.TEMPLATE_TOKENS))
        else:
            lengths.append(len(encode(tokenizer, item, completion_only=False).input_ids))
    lengths.sort()
    return sum(lengths) / len(lengths), lengths[min(len(lengths) - 1, int(0.95 * len(lengths)))]


def _contracts_facts(tokenizer) -> DatasetFacts:
    from ..tasks.contracts import generate

    avg, p95 = _length_stats(tokenizer, [r["messages"] for r in generate(50, seed=0)])
    return DatasetFacts(S.DEMO_TASK_SIZE, avg, p95, "built-in contracts task", task="contracts")


def local_tokenizer(model: str):
    """The model's tokenizer when it is on this machine (no download), else None."""
    from ..models import load_tokenizer, resolve_source

    try:
        source = resolve_source(model)
    except Exception:
        return None
    if source.kind == "hub":
        return None
    try:
        return load_tokenizer(source)
    except Exception:
        return None


def hardware(req: Request) -> Hardware:
    """The devices of `req` (--gpus, --gpu-memory), detected where not given."""
    gpus = req.gpus
    if gpus is None:
        from ..base_model import gpu_count

        gpus = gpu_count()
    if gpus < 0:
        raise ConfigError(f"--gpus must be >= 0 (0 means CPU), got {gpus}")
    mem = req.gpu_memory
    if mem is not None and mem <= 0:
        raise ConfigError(f"--gpu-memory must be > 0 GiB, got {mem}")
    if mem is None:
        if gpus > 0:
            try:
                import torch

                mem = torch.cuda.get_device_properties(0).total_memory / GIB
            except Exception:
                mem = S.DEFAULT_GPU_GIB
        else:
            mem = _ram_gib()
    return Hardware(gpus, float(mem), gpus > 0)


def _ram_gib() -> float:
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return S.DEFAULT_RAM_GIB
