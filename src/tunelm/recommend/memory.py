"""Training memory from model shapes: weights, adapters, gradients, optimizer state, activations
and logits. Used to pick the largest per-device micro-batch that fits a GPU's memory.

Activations are counted per token and layer from what a Llama-style block saves for backward
(norm outputs, q/k/v, attention output, the gated MLP's four intermediate tensors, LoRA inputs);
logits are counted three times (fp32 logits, their log-softmax and its gradient). The estimate is
checked against measured peaks by benchmarks/memory_check.py (docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from .facts import ModelFacts
from .sources import FSDP_GATHERED_LAYERS

GIB = 2**30
LORA_TARGETS_PER_LAYER = 7  # q, k, v, o, gate, up, down ("all-linear" on a Llama-style block)


@dataclass
class MemoryEstimate:
    weights: float
    trainable_states: float  # trainable parameters' gradients and optimizer state (+ fp32 copy)
    activations: float
    logits: float
    overhead: float
    trainable_params: int

    @property
    def total(self) -> float:
        return self.weights + self.trainable_states + self.activations + self.logits + self.overhead

    def as_dict(self) -> dict:
        d = {k: round(v / GIB, 3) for k, v in self.__dict__.items() if k != "trainable_params"}
        d["total"] = round(self.total / GIB, 3)
        d["trainable_params"] = self.trainable_params
        return {"unit": "GiB", **d}


def lora_params(f: ModelFacts, r: int, targets: int = LORA_TARGETS_PER_LAYER) -> int:
    """Parameters of rank-r LoRA on every linear layer of every block."""
    kv_dim = f.hidden_size * f.num_kv_heads // f.num_heads
    h, i = f.hidden_size, f.intermediate_size
    shapes = [(h, h), (h, kv_dim), (h, kv_dim), (h, h), (h, i), (h, i), (i, h)][:targets]
    experts = max(1, f.moe_experts)
    per_layer = sum(r * (a + b) for a, b in shapes[:4]) + experts * sum(
        r * (a + b) for a, b in shapes[4:]
    )
    return f.num_layers * per_layer


def estimate(
    f: ModelFacts,
    *,
    method: str,
    micro_batch: int,
    seq_len: int,
    r: int = 16,
    on_gpu: bool = True,
    half_precision: bool = True,
    gradient_checkpointing: bool = False,
    optimizer_bytes: int = 8,
    shards: int = 1,
) -> MemoryEstimate:
    """Peak training memory in bytes for one device.

    `shards` > 1: fully sharded (FSDP) over that many ranks: each keeps 1/shards of the weights,
    gradients and optimizer state, plus the full weights of the layers it has gathered
    (`FSDP_GATHERED_LAYERS`); activations, logits and overhead are per rank as before.

    `on_gpu` and `half_precision` decide the weight dtype: LoRA/QLoRA on a GPU keep bf16 base
    weights; a CPU run, or full fine-tuning, keeps fp32 weights (mixed precision via autocast).
    `optimizer_bytes` per trainable parameter: 8 for AdamW, 2 for 8-bit AdamW.
    """
    p = f.num_params
    emb = f.vocab_size * f.hidden_size * (1 if f.tie_embeddings else 2)
    if method == "qlora":
        weights = (p - emb) * 0.5 * 1.03 + emb * 2  # NF4 + double-quantized constants
    elif method == "lora" and on_gpu and half_precision:
        weights = p * 2
    else:
        weights = p * 4
    trainable = p if method == "full" else lora_params(f, r)
    states = trainable * (4 + optimizer_bytes)  # fp32 gradient + optimizer moments
    if shards > 1:
        layer = (weights - emb * (weights / p)) / f.num_layers  # one decoder layer's weights
        weights = weights / shards + min(FSDP_GATHERED_LAYERS, f.num_layers) * layer
        states /= shards

    tokens = micro_batch * seq_len
    act_bytes = 2 if (on_gpu and half_precision) else 4
    h, i, kv = f.hidden_size, f.intermediate_size, f.hidden_size * f.num_kv_heads // f.num_heads
    # saved for backward per token and layer, in elements:
    # 2 norms (2h) + residuals (2h) + q,k,v (h+2kv) + attention out & o_proj input (2h)
    # + gate, up, act(gate), act*up (4i) + LoRA dropout inputs (4h + 3i, with dropout > 0)
    # + about 7h more, fitted to measured peaks (the RMSNorms' fp32 intermediates and the rotary
    # embedding's products are the likely owners; benchmarks/memory_check.py, calibration cases)
    per_token_layer = 16 * h + 2 * kv + 4 * i
    if method != "full":
        per_token_layer += 4 * h + 3 * i
    if not on_gpu:
        # CPU attention keeps part of the score matrix (heads x seq per token; the 0.41 is fitted
        # like the 7h above); fused GPU kernels (flash / memory-efficient SDPA) keep none of it
        per_token_layer += 0.41 * f.num_heads * seq_len
    if gradient_checkpointing:
        activations = tokens * (f.num_layers * h + per_token_layer) * act_bytes
    else:
        activations = tokens * f.num_layers * per_token_layer * act_bytes
    logits = tokens * f.vocab_size * 4 * 3
    # CUDA context and allocator reserve; on a CPU, the trainer, data and tokenizer
    overhead = 0.35 * GIB if on_gpu else 0.04 * GIB
    return MemoryEstimate(weights, states, activations, logits, overhead, trainable)


def largest_micro_batch(f: ModelFacts, budget_gib: float, max_batch: int, **kw) -> int | None:
    """The largest power-of-two micro-batch <= max_batch whose estimate fits 90% of the budget."""
    best = None
    b = 1
    while b <= max_batch:
        if estimate(f, micro_batch=b, **kw).total <= 0.9 * budget_gib * GIB:
            best = b
        b *= 2
    return best
