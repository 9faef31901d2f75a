"""The rules of `tunelm recommend`: pure functions of the gathered facts, one per decision (rank,
epochs, batch, learning rate, schedule, regularisation, evaluation), each returning its values
as `Advice` (value, reason, source). Every constant is read from `sources`; nothing here reads a
file or a device, so each rule is tested on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import sources as S
from .advice import Advice
from .facts import ModelFacts
from .sharding import Fit, fit, sharding_advice

if TYPE_CHECKING:
    from .gather import DatasetFacts, Hardware

# ----------------------------------------------------------------------------------------------
# The learning rate's sources
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
            small, large = S.QLORA_7B_SIZES
            if method == "qlora" and small < params_b <= large:
                return lo, S.QLORA_7B_MAX, "QLoRA on 7B: below 1e-4"
            return lo, hi, note
    raise AssertionError("unreachable")


def alpha_equivalent(alpha: float, r: int, rslora: bool) -> float:
    """The standard-LoRA alpha with the same update scale: alpha, or alpha*sqrt(r) with rsLoRA."""
    return alpha * math.sqrt(r) if rslora else alpha


# ----------------------------------------------------------------------------------------------
# One rule per decision
# ----------------------------------------------------------------------------------------------


def rank(asked: int | None, task_type: str, n: int) -> Advice:
    """lora.r by task type and dataset size (`asked`: --rank)."""
    if asked is not None:
        return Advice(asked, "as asked (--rank)", "practitioner")
    if task_type in ("style", "classification"):
        return Advice(S.RANK["format"], f"{task_type} tasks change format more than knowledge: "
                      "4 to 16", "practitioner")
    if task_type == "code":
        r = S.RANK["code_large"] if n >= S.LARGE_DATASET else S.RANK["code"]
        return Advice(r, "code and math need more capacity: 32 to 64", "practitioner")
    if n >= S.LARGE_DATASET:
        return Advice(S.RANK["large"], f"{n} examples: large or multi-domain sets need 32 to 64",
                      "practitioner")
    return Advice(S.RANK["small"], f"{n} examples: small specialised sets need 4 to 16",
                  "practitioner")


def lora(r: Advice, alpha_asked: float | None, use_rslora: bool) -> dict[str, Advice]:
    """The lora.* values around the rank: alpha fixed at the rule's reference, dropout, targets."""
    alpha = alpha_asked if alpha_asked is not None else S.ALPHA_REF
    return {
        "lora.r": r,
        "lora.alpha": Advice(alpha, "alpha 32: the learning-rate rule was fitted with alpha "
                             "fixed at 32, and at fixed alpha the best rate does not depend on "
                             "the rank" if alpha_asked is None else "as asked (--alpha); the "
                             "learning rate is rescaled by 32/alpha below",
                             "lora_without_regret"),
        "lora.dropout": Advice(S.DROPOUT, "0.05: light regularisation; 0 to 0.1 is the "
                               "published range", "qlora"),
        "lora.target_modules": Advice("all-linear", "every linear layer, attention and MLP: "
                                      "attention-only LoRA underperforms", "lora_without_regret"),
        "lora.use_rslora": Advice(use_rslora, "as asked" if use_rslora else
                                  "standard scaling alpha/r, the one the rate rule assumes",
                                  "rslora"),
    }


def epochs(n: int) -> Advice:
    """train.epochs by dataset size."""
    value, lo, hi = next((e, lo, hi) for bound, e, lo, hi in S.EPOCHS if n < bound)
    return Advice(value, f"{n} examples: {lo} to {hi} epochs, with early stopping to catch "
                  "overfitting", "practitioner")


@dataclass
class Batch:
    """The batch decision: what fits each device, and the effective batch it makes."""

    micro: int
    accum: int
    devices: int
    effective: int
    reference: int  # the batch the practitioner band asks for
    gradient_checkpointing: bool
    max_length: int
    memory_kw: dict  # the memory estimate's arguments (method, seq_len, r, ...)
    per_device_target: int
    reason: str
    why_changed: str  # why the effective batch differs from the reference ("" if it does not)
    notes: list[str] = field(default_factory=list)
    fit: Fit | None = None  # what fits a device, sharded or not


def batch(facts: ModelFacts, n: int, n_epochs: int, task_type: str, method: str, r: int,
          hw: Hardware, p95_tokens: int, asked: int | None) -> Batch:
    """The largest power-of-two micro-batch that fits a device by the memory estimate, and the
    accumulation that makes the reference (or asked, --batch) effective batch."""
    small = n < S.SMALL_DATASET or task_type in ("style", "classification")
    ref = S.REF_BATCH["small" if small else ("huge" if n >= S.HUGE_DATASET else "default")]
    band = "16 to 64 for small specialised sets" if small else "32 to 128 for instruction tuning"
    reason = band
    while ref > S.MIN_REF_BATCH and math.ceil(n / ref) * n_epochs < S.MIN_STEPS:
        ref //= 2
        reason = (f"{band}, lowered to {ref} so that {n} examples x {n_epochs} epochs "
                  f"give at least {S.MIN_STEPS} optimizer steps")
    max_len = _round_up(max(S.MAX_LENGTH_STEP, p95_tokens), S.MAX_LENGTH_STEP)
    kw = dict(method=method, seq_len=max_len, r=r, on_gpu=hw.on_gpu,
              half_precision=hw.on_gpu,
              optimizer_bytes=S.OPTIMIZER_BYTES["8bit" if method == "qlora" else "adamw"])
    target = asked or ref
    per_device = max(1, target // max(1, hw.gpus))
    fitted = fit(facts, hw.memory_gib, per_device, hw.gpus, kw)  # sharded where it must be
    micro, gc = fitted.micro, fitted.gradient_checkpointing
    kw["shards"] = fitted.shards
    notes = []
    if micro is None:
        micro = 1
        more = ("more GPUs to shard it over (train.sharding fsdp)" if method != "qlora" else
                "a shorter max_length")
        notes.append(f"even a micro-batch of 1 at {max_len} tokens does not fit "
                     f"{hw.memory_gib:.0f} GiB by the estimate"
                     f"{f' sharded over {hw.gpus} GPUs' if fitted.shards > 1 else ''}: use "
                     f"--method qlora, a shorter max_length, or {more}")
    devices = max(1, hw.gpus)
    accum = max(1, math.ceil(target / (micro * devices)))
    effective = micro * accum * devices
    why = ""
    if effective != ref:
        why = "as asked (--batch)" if asked else f"{devices} devices x micro-batch {micro}"
        reason += f"; {why} makes it {effective}"
    return Batch(micro, accum, devices, effective, ref, gc, max_len, kw, per_device, reason,
                 why, notes, fitted)


def batch_advice(b: Batch, memory_gib: float) -> dict[str, Advice]:
    return {
        "train.batch_size": Advice(b.micro, f"the largest power-of-two micro-batch up to "
                                   f"{b.per_device_target} that fits {memory_gib:.0f} GiB per "
                                   f"device at {b.max_length} tokens by the memory estimate",
                                   "tunelm memory model"),
        "train.grad_accum": Advice(b.accum, f"{b.micro} x {b.accum} x {b.devices} device(s) = "
                                   f"effective batch {b.effective}: {b.reason}", "practitioner"),
        # the ranks the accumulation was computed for: the trial runs on them (torchrun), so the
        # effective batch the rate was scaled for is the one that trains
        "train.devices": Advice(b.devices, f"{b.devices} data-parallel rank(s), one per GPU: "
                                f"effective batch = {b.micro} x {b.accum} x {b.devices}",
                                "tunelm"),
        "train.sharding": sharding_advice(b.fit or Fit(b.micro, False, 1), b.devices, memory_gib),
    }


def learning_rate(facts: ModelFacts, method: str, alpha: float, r: int, rslora: bool,
                  b: Batch) -> tuple[Advice, list[str]]:
    """train.learning_rate: the hidden-size rule, rescaled for alpha (at the rule's alpha 32)
    and for the effective batch (square-root rule); the practitioner range beside it, and a
    note where the two disagree."""
    lr, exponent, assumed = formula_lr(facts.hidden_size, facts.family, method)
    reason = (f"5e-5 x {1 if method == 'full' else S.M_LORA:g} x (2000/{facts.hidden_size})"
              f"^{exponent} = {lr:.3g}")
    if assumed:
        reason += (f"; no exponent is published for the {facts.family} family, so the Llama "
                   "exponent 0.781 is assumed (a dense decoder like Llama; for hidden sizes "
                   "above 2000 it is the more conservative of the two published exponents)")
    p_lo, p_hi, p_note = practitioner_range(facts.params_b, method)
    if method != "full":
        equiv = alpha_equivalent(alpha, r, rslora)
        if equiv != S.ALPHA_REF:
            lr *= S.ALPHA_REF / equiv
            how = (f"rsLoRA scales by alpha/sqrt(r): alpha {alpha:g} at rank {r} acts like "
                   f"standard alpha {equiv:g}" if rslora else f"alpha {alpha:g}")
            reason += (f"; {how}, and the update grows with alpha x rate, so the rate is "
                       f"scaled by 32/{equiv:g} to {lr:.3g}")
    if b.effective != b.reference:
        factor = math.sqrt(b.effective / b.reference)
        lr *= factor
        reason += (f"; effective batch {b.effective} instead of {b.reference} ({b.why_changed}):"
                   f" square-root rule, rate x {factor:.3f} = {lr:.3g}")
    lr = float(f"{lr:.3g}")
    follows = ("the hidden-size rule, because it was fitted on exhaustive sweeps with <0.5% "
               "regret; practitioner ranges are often quoted with alpha = 2 x rank, whose larger "
               "update makes lower rates look best")
    notes = []
    if lr > p_hi * S.DISAGREE_FACTOR or lr < p_lo / S.DISAGREE_FACTOR:
        notes.append(f"the sources disagree on the learning rate: rule {lr:.3g} vs practitioners "
                     f"{p_lo:g} to {p_hi:g} ({p_note}); the recommendation follows {follows}; the "
                     "search space spans both")
    others = [{"value": [p_lo, p_hi], "source": "practitioner", "note": p_note}]
    return Advice(lr, reason, "tinker", others), notes


def schedule(n: int) -> dict[str, Advice]:
    """train.warmup_ratio by dataset size, and the scheduler."""
    warmup = next(ratio for bound, ratio in S.WARMUP if n < bound)
    return {
        "train.warmup_ratio": Advice(warmup, f"3 to 10% of the steps, more for small datasets "
                                     f"({n} examples)", "common"),
        "train.scheduler": Advice("cosine", "cosine decay after warmup; wsd (warmup-stable-decay) "
                                  "is the alternative when the run length may change", "common",
                                  [{"value": "wsd", "source": "wsd"}]),
    }


def regularisation(n: int, r: int, method: str, gc: bool) -> dict[str, Advice]:
    """Weight decay (more where overfitting is likely), clipping, optimizer, checkpointing."""
    overfit = n < S.OVERFIT_PRONE["examples"] or r >= S.OVERFIT_PRONE["rank"]
    clip = S.CLIP["qlora" if method == "qlora" else "default"]
    qlora = method == "qlora"
    return {
        "train.weight_decay": Advice(
            S.WEIGHT_DECAY["overfit_prone" if overfit else "default"],
            "0.1: overfitting is likely (small data or high rank)" if overfit else "0.01",
            "common"),
        "train.max_grad_norm": Advice(clip, "0.3 for QLoRA as published" if qlora else
                                      "clip the global gradient norm at 1.0",
                                      ("qlora" if qlora else "common")),
        "train.optimizer": Advice("paged_adamw_8bit" if qlora else "adamw_torch",
                                  "paged 8-bit AdamW as in QLoRA" if qlora else "AdamW",
                                  ("qlora" if qlora else "common")),
        "train.gradient_checkpointing": Advice(gc, "needed to fit the micro-batch" if gc else
                                               "not needed: the micro-batch fits without it",
                                               "tunelm memory model"),
    }


def evaluation(steps: int) -> dict[str, Advice]:
    """How often to evaluate, and when to stop early."""
    return {
        "train.eval_steps": Advice(max(1, steps // S.EVALS_PER_RUN), f"about {S.EVALS_PER_RUN} "
                                   f"evaluations over {steps} steps", "common"),
        "train.early_stopping_patience": Advice(S.EARLY_STOPPING["patience"], "stop after 3 "
                                                "evaluations without improvement", "common"),
        "train.early_stopping_threshold": Advice(S.EARLY_STOPPING["threshold"], "an eval-loss "
                                                 "drop under 0.001 is noise", "common"),
    }


def _round_up(x: float, k: int) -> int:
    return int(math.ceil(x / k) * k)


# ----------------------------------------------------------------------------------------------
# Around the recommendation: the search space and the budget
# ----------------------------------------------------------------------------------------------


def search_space(lr: float, facts: ModelFacts, method: str, r: int) -> dict:
    """The search space around the recommendation, its learning-rate range widened to cover the
    practitioner range too, so that a search spans both sources."""
    from ..search.space import space_around

    p_lo, p_hi, _ = practitioner_range(facts.params_b, method)
    return space_around(lr, r, method, lr_low=p_lo, lr_high=p_hi)


def throughput_estimate(facts: ModelFacts, method: str, devices: int,
                        on_gpu: bool) -> tuple[float, str]:
    """(training tokens/s, how it was estimated) from the FLOPs per token."""
    flops_per_token = S.FLOPS_PER_TOKEN["full" if method == "full" else "adapter"] * facts.num_params
    if on_gpu:
        per_device = S.GPU_FLOPS * S.GPU_UTILISATION
        how = "assumed 40% of an A100-class GPU's 312 TFLOP/s per device; --measure measures it"
    else:
        per_device = S.CPU_FLOPS
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
