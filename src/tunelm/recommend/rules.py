"""The rules of `tunelm recommend`: each value with its reason and its source.

`recommend(Request(...))` reads model facts and dataset statistics, applies the rules in a fixed
order (learning rate, batch, epochs, schedule, LoRA), and returns a Recommendation whose `config()`
`tunelm train` runs as it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..config import METHODS, Config, from_dict
from ..errors import ConfigError
from . import sources as S
from .facts import ModelFacts, model_facts
from .memory import GIB, MemoryEstimate, estimate, largest_micro_batch

TASK_TYPES = ("instruction", "classification", "code", "style")
DEMO_TASK_SIZE = 240  # the built-in task's size when recommend is given no data: the demo's


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


def cite(source: str) -> str:
    """The full citation of a source key (see sources.SOURCES); other text is returned as is."""
    return S.SOURCES.get(source, source)


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
class DatasetFacts:
    examples: int
    avg_tokens: float
    p95_tokens: int
    source: str
    path: str | None = None
    task: str | None = None


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


# ----------------------------------------------------------------------------------------------
# The learning rate
# ----------------------------------------------------------------------------------------------


def formula_lr(hidden_size: int, family: str, method: str = "lora") -> tuple[float, float, bool]:
    """(rate, exponent, exponent_assumed) of the hidden-size rule for LoRA (method lora/qlora)
    or full fine-tuning. Families without a published exponent take the Llama one."""
    exponent = S.EXPONENTS.get(family)
    assumed = exponent is None
    if assumed:
        exponent = S.EXPONENTS["llama"]
    multiplier = 1.0 if method == "full" else S.M_LORA
    return S.LR_BASE * multiplier * (S.HIDDEN_REF / hidden_size) ** exponent, exponent, assumed


def practitioner_range(params_b: float, method: str) -> tuple[float, float, str]:
    if method == "full":
        return S.PRACTITIONER_FULL
    for bound, lo, hi, note in S.PRACTITIONER_LORA:
        if params_b <= bound:
            if method == "qlora" and 3.5 < params_b <= 10:
                return lo, S.QLORA_7B_MAX, "QLoRA on 7B: below 1e-4"
            return lo, hi, note
    raise AssertionError("unreachable")


def alpha_equivalent(alpha: float, r: int, rslora: bool) -> float:
    """The standard-LoRA alpha with the same update scale: alpha, or alpha*sqrt(r) with rsLoRA."""
    return alpha * math.sqrt(r) if rslora else alpha


# ----------------------------------------------------------------------------------------------
# Dataset statistics
# ----------------------------------------------------------------------------------------------


def dataset_facts(req: Request, tokenizer=None) -> DatasetFacts:
    if req.data is None:
        if req.examples is None:
            from ..models import EMBEDDED_NAMES

            if req.model.lower() in EMBEDDED_NAMES:
                return _contracts_facts(tokenizer)
            raise ConfigError(
                "give --data PATH (a JSONL/CSV file or directory), or --examples N "
                "--avg-tokens T to describe a dataset you have not written yet"
            )
        if req.examples < 1:
            raise ConfigError(f"--examples must be >= 1, got {req.examples}")
        avg = req.avg_tokens or 512.0
        if avg <= 0:
            raise ConfigError(f"--avg-tokens must be > 0, got {req.avg_tokens}")
        return DatasetFacts(req.examples, avg, int(avg * 1.5), "--examples/--avg-tokens")
    from ..config import DataConfig
    from ..data import detect_format, read_records, to_messages

    records = read_records(req.data)  # DataError (exit 2) on a missing, empty or bad file
    cfg = DataConfig(train=req.data)
    items = [to_messages(rec, detect_format(rec, cfg), cfg) for rec in records]
    how = "tokenized" if tokenizer is not None else "estimated at 4 characters per token"
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
            lengths.append(max(1, len(text) // 4 + 8))
        else:
            lengths.append(len(encode(tokenizer, item, completion_only=False).input_ids))
    lengths.sort()
    return sum(lengths) / len(lengths), lengths[min(len(lengths) - 1, int(0.95 * len(lengths)))]


def _contracts_facts(tokenizer) -> DatasetFacts:
    from ..tasks.contracts import generate

    avg, p95 = _length_stats(tokenizer, [r["messages"] for r in generate(50, seed=0)])
    return DatasetFacts(DEMO_TASK_SIZE, avg, p95, "built-in contracts task", task="contracts")


def _local_tokenizer(model: str):
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


def _hardware(req: Request) -> tuple[int, float, bool]:
    """(gpus, memory per device in GiB, on_gpu)."""
    from ..models import gpu_count

    gpus = req.gpus if req.gpus is not None else gpu_count()
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
                mem = 80.0
        else:
            mem = _ram_gib()
    return gpus, float(mem), gpus > 0


def _ram_gib() -> float:
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 16.0


# ----------------------------------------------------------------------------------------------
# The whole recommendation
# ----------------------------------------------------------------------------------------------


def recommend(req: Request) -> Recommendation:
    """A complete starting config for `req`, every value with its reason and source."""
    if req.method not in METHODS:
        raise ConfigError(f"--method must be one of {', '.join(METHODS)}, got {req.method!r}")
    if req.task_type not in TASK_TYPES:
        raise ConfigError(f"--task-type must be one of {', '.join(TASK_TYPES)}, got {req.task_type!r}")
    facts = model_facts(req.model)
    gpus, mem_gib, on_gpu = _hardware(req)
    if req.method == "qlora" and not on_gpu:
        raise ConfigError("--method qlora needs a CUDA GPU (bitsandbytes NF4); use --method lora "
                          "on a CPU, or pass --gpus N --gpu-memory GIB to plan for a GPU machine")
    data = dataset_facts(req, _local_tokenizer(req.model))
    A: dict[str, Advice] = {}
    notes: list[str] = []

    # --- model -----------------------------------------------------------------------------
    A["model.name"] = Advice(req.model, f"{facts.family} family, hidden size {facts.hidden_size}, "
                             f"{facts.num_layers} layers, {facts.params_b:.2f}B parameters",
                             facts.source)
    A["model.method"] = Advice(req.method, "as asked (--method)", "user")
    A["model.precision"] = Advice("auto", "bf16 on GPUs and CPUs that run it fast, fp32 otherwise "
                                  "(bf16 on an AVX2-only CPU runs ~17x slower)", "tunelm")

    # --- LoRA --------------------------------------------------------------------------------
    n = data.examples
    if req.rank is not None:
        r, r_reason = req.rank, "as asked (--rank)"
    elif req.task_type in ("style", "classification"):
        r, r_reason = 8, f"{req.task_type} tasks change format more than knowledge: 4 to 16"
    elif req.task_type == "code":
        r = 64 if n >= 5_000 else 32
        r_reason = "code and math need more capacity: 32 to 64"
    elif n >= 5_000:
        r, r_reason = 32, f"{n} examples: large or multi-domain sets need 32 to 64"
    else:
        r, r_reason = 16, f"{n} examples: small specialised sets need 4 to 16"
    alpha = req.alpha if req.alpha is not None else S.ALPHA_REF
    if req.method != "full":
        A["lora.r"] = Advice(r, r_reason, "practitioner")
        A["lora.alpha"] = Advice(alpha, "alpha 32: the learning-rate rule was fitted with alpha "
                                 "fixed at 32, and at fixed alpha the best rate does not depend on "
                                 "the rank" if req.alpha is None else "as asked (--alpha); the "
                                 "learning rate is rescaled by 32/alpha below",
                                 "lora_without_regret")
        A["lora.dropout"] = Advice(S.DROPOUT, "0.05: light regularisation; 0 to 0.1 is the "
                                   "published range", "qlora")
        A["lora.target_modules"] = Advice("all-linear", "every linear layer, attention and MLP: "
                                          "attention-only LoRA underperforms",
                                          "lora_without_regret")
        A["lora.use_rslora"] = Advice(req.use_rslora, "as asked" if req.use_rslora else
                                      "standard scaling alpha/r, the one the rate rule assumes",
                                      "rslora")

    # --- learning rate -------------------------------------------------------------------------
    lr, exponent, assumed = formula_lr(facts.hidden_size, facts.family, req.method)
    lr_reason = (f"5e-5 x {1 if req.method == 'full' else 10:g} x (2000/{facts.hidden_size})"
                 f"^{exponent} = {lr:.3g}")
    if assumed:
        lr_reason += (f"; no exponent is published for the {facts.family} family, so the Llama "
                      "exponent 0.781 is assumed (a dense decoder like Llama; for hidden sizes "
                      "above 2000 it is the more conservative of the two published exponents)")
    p_lo, p_hi, p_note = practitioner_range(facts.params_b, req.method)
    if req.method != "full":
        equiv = alpha_equivalent(alpha, r, req.use_rslora)
        if equiv != S.ALPHA_REF:
            lr *= S.ALPHA_REF / equiv
            how = (f"rsLoRA scales by alpha/sqrt(r): alpha {alpha:g} at rank {r} acts like "
                   f"standard alpha {equiv:g}" if req.use_rslora else f"alpha {alpha:g}")
            lr_reason += (f"; {how}, and the update grows with alpha x rate, so the rate is "
                          f"scaled by 32/{equiv:g} to {lr:.3g}")
    # --- batch -------------------------------------------------------------------------------
    epochs, e_lo, e_hi = next((e, lo, hi) for bound, e, lo, hi in S.EPOCHS if n < bound)
    small = n < 2_000 or req.task_type in ("style", "classification")
    if req.effective_batch is not None and req.effective_batch < 1:
        raise ConfigError(f"--batch must be >= 1, got {req.effective_batch}")
    ref_batch = 16 if small else (64 if n >= 50_000 else 32)
    band = "16 to 64 for small specialised sets" if small else "32 to 128 for instruction tuning"
    batch_reason = band
    while ref_batch > 4 and math.ceil(n / ref_batch) * epochs < S.MIN_STEPS:
        ref_batch //= 2
        batch_reason = (f"{band}, lowered to {ref_batch} so that {n} examples x {epochs} epochs "
                        f"give at least {S.MIN_STEPS} optimizer steps")
    max_len = _round_up(max(64, data.p95_tokens), 64)
    kw = dict(method=req.method, seq_len=max_len, r=r, on_gpu=on_gpu,
              half_precision=on_gpu, optimizer_bytes=2 if req.method == "qlora" else 8)
    target = req.effective_batch or ref_batch
    per_device_target = max(1, target // max(1, gpus))
    gc = req.method == "qlora"
    micro = largest_micro_batch(facts, mem_gib, per_device_target, gradient_checkpointing=gc, **kw)
    if (micro is None or micro < min(4, per_device_target)) and not gc:
        with_gc = largest_micro_batch(facts, mem_gib, per_device_target,
                                      gradient_checkpointing=True, **kw)
        if with_gc and (micro is None or with_gc > micro):
            micro, gc = with_gc, True
    if micro is None:
        micro = 1
        notes.append(f"even a micro-batch of 1 at {max_len} tokens does not fit {mem_gib:.0f} GiB "
                     f"by the estimate: use --method qlora or a shorter max_length, or shard the weights "
                     "across GPUs with FSDP/DeepSpeed (not modelled here)")
    devices = max(1, gpus)
    accum = max(1, math.ceil(target / (micro * devices)))
    effective = micro * accum * devices
    if effective != ref_batch:
        factor = math.sqrt(effective / ref_batch)
        lr *= factor
        why = "as asked (--batch)" if req.effective_batch else f"{devices} devices x micro-batch {micro}"
        lr_reason += (f"; effective batch {effective} instead of {ref_batch} ({why}): square-root "
                      f"rule, rate x {factor:.3f} = {lr:.3g}")
        batch_reason += f"; {why} makes it {effective}"
    lr = float(f"{lr:.3g}")
    follows = ("the hidden-size rule, because it was fitted on exhaustive sweeps with <0.5% "
               "regret; practitioner ranges are often quoted with alpha = 2 x rank, whose larger "
               "update makes lower rates look best")
    others = [{"value": [p_lo, p_hi], "source": "practitioner", "note": p_note}]
    if lr > p_hi * 1.5 or lr < p_lo / 1.5:
        notes.append(f"the sources disagree on the learning rate: rule {lr:.3g} vs practitioners "
                     f"{p_lo:g} to {p_hi:g} ({p_note}); the recommendation follows {follows}; the "
                     "search space spans both")
    A["train.learning_rate"] = Advice(lr, lr_reason, "tinker", others)

    A["train.batch_size"] = Advice(micro, f"the largest power-of-two micro-batch up to "
                                   f"{per_device_target} that fits {mem_gib:.0f} GiB per device at "
                                   f"{max_len} tokens by the memory estimate", "tunelm memory model")
    A["train.grad_accum"] = Advice(accum, f"{micro} x {accum} x {devices} device(s) = effective "
                                   f"batch {effective}: {batch_reason}", "practitioner")
    A["train.epochs"] = Advice(epochs, f"{n} examples: {e_lo} to {e_hi} epochs, with early "
                               "stopping to catch overfitting", "practitioner")
    steps = math.ceil(n / effective) * epochs
    if steps < S.MIN_STEPS:
        notes.append(f"only {steps} optimizer steps: fewer than {S.MIN_STEPS}; more data helps "
                     "more than more epochs")
    warmup = 0.1 if n < 1_000 else (0.05 if n < 10_000 else 0.03)
    A["train.warmup_ratio"] = Advice(warmup, f"3 to 10% of the steps, more for small datasets "
                                     f"({n} examples)", "common")
    A["train.scheduler"] = Advice("cosine", "cosine decay after warmup; wsd (warmup-stable-decay) "
                                  "is the alternative when the run length may change",
                                  "common",
                                  [{"value": "wsd", "source": "wsd"}])
    overfit = n < 1_000 or r >= 64
    A["train.weight_decay"] = Advice(
        S.WEIGHT_DECAY["overfit_prone" if overfit else "default"],
        "0.1: overfitting is likely (small data or high rank)" if overfit else "0.01",
        "common")
    clip = S.CLIP["qlora" if req.method == "qlora" else "default"]
    A["train.max_grad_norm"] = Advice(clip, "0.3 for QLoRA as published" if clip == 0.3 else
                                      "clip the global gradient norm at 1.0",
                                      ("qlora" if clip == 0.3 else "common"))
    A["train.optimizer"] = Advice("paged_adamw_8bit" if req.method == "qlora" else "adamw_torch",
                                  "paged 8-bit AdamW as in QLoRA" if req.method == "qlora"
                                  else "AdamW", ("qlora" if req.method == "qlora" else "common"))
    A["train.gradient_checkpointing"] = Advice(gc, "needed to fit the micro-batch" if gc else
                                               "not needed: the micro-batch fits without it",
                                               "tunelm memory model")
    A["train.eval_steps"] = Advice(max(1, steps // S.EVALS_PER_RUN), f"about {S.EVALS_PER_RUN} "
                                   f"evaluations over {steps} steps", "common")
    A["train.early_stopping_patience"] = Advice(S.EARLY_STOPPING["patience"], "stop after 3 "
                                                "evaluations without improvement", "common")
    A["train.early_stopping_threshold"] = Advice(S.EARLY_STOPPING["threshold"], "an eval-loss "
                                                 "drop under 0.001 is noise", "common")

    # --- data ------------------------------------------------------------------------------
    if data.task:
        A["data.task"] = Advice(data.task, "no data given: the built-in task", "tunelm")
        A["data.task_train_size"] = Advice(data.examples, "the demo's size, a CPU-sized run",
                                           "tunelm")
    else:
        A["data.train"] = Advice(data.path or "REPLACE_WITH_YOUR_DATA.jsonl", data.source, "user")
    A["data.max_length"] = Advice(max_len, f"95% of the examples fit ({data.p95_tokens} tokens, "
                                  "rounded up to a multiple of 64)", "dataset statistics")

    mem = estimate(facts, micro_batch=micro, gradient_checkpointing=gc, **kw)
    space = search_space(lr, facts, req.method, r)
    budget = budget_sketch(facts, data, epochs, req.method, devices, on_gpu, req.throughput)
    return Recommendation(req, facts, data, A, space, mem, budget, notes)


def _round_up(x: float, k: int) -> int:
    return int(math.ceil(x / k) * k)


def search_space(lr: float, facts: ModelFacts, method: str, r: int) -> dict:
    """The search space around the recommendation, its learning-rate range widened to cover the
    practitioner range too, so that a search spans both sources."""
    from ..search.space import space_around

    p_lo, p_hi, _ = practitioner_range(facts.params_b, method)
    return space_around(lr, r, method, lr_low=p_lo, lr_high=p_hi)


def throughput_estimate(facts: ModelFacts, method: str, devices: int,
                        on_gpu: bool) -> tuple[float, str]:
    """(training tokens/s, how it was estimated) from the FLOPs per token."""
    flops_per_token = (6 if method == "full" else 4) * facts.num_params
    if on_gpu:
        per_device = 312e12 * 0.4  # an A100-class GPU (bf16 dense) at 40% utilisation
        how = "assumed 40% of an A100-class GPU's 312 TFLOP/s per device; --measure measures it"
    else:
        per_device = 0.078e12  # measured: SmolLM2-135M LoRA at ~145 tokens/s on 2 CPU cores
        how = "assumed 0.078 TFLOP/s, as measured on a 2-core CPU; --measure measures it"
    return max(1, devices) * per_device / flops_per_token, how


def budget_sketch(facts: ModelFacts, data: DatasetFacts, epochs: int, method: str, devices: int,
                  on_gpu: bool, measured: float | None) -> dict:
    """Cost of one full run and of a search, from tokens and a throughput estimate."""
    tokens_epoch = data.examples * data.avg_tokens
    run_tokens = tokens_epoch * epochs
    if measured:
        tps, how = measured, "measured (--measure)"
    else:
        tps, how = throughput_estimate(facts, method, devices, on_gpu)
    run_hours = run_tokens / tps / 3600
    from ..search.strategies.protocol import stages_for  # the protocol's own cost, one definition

    always = [s for s in stages_for(method) if s.always]  # the others come out of the reserve
    hours = {s.key: s.runs * run_hours for s in always}
    hours["evaluation"] = 0.05 * sum(hours.values())
    hours["reserve"] = 0.2 * sum(hours.values())
    total = sum(hours.values())
    return {
        "tokens_per_epoch": int(tokens_epoch),
        "tokens_per_run": int(run_tokens),
        "tokens_per_s": round(tps, 1),
        "throughput_source": how,
        "hours_per_run": round(run_hours, 3),
        "search_hours": {k: round(v, 3) for k, v in hours.items()},
        "search_total_hours": round(total, 3),
        "search_gpu_hours": round(total * devices, 3) if on_gpu else None,
        "plan": f"{', '.join(s.what for s in always)} (probes on 20% of the steps), "
                "evaluation, and 20% in reserve",
    }
