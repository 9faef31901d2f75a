"""Our config in Hugging Face's names: `TrainingArguments` keys, PEFT `LoraConfig` arguments,
bitsandbytes' 4-bit settings, optimizer and scheduler names. The one mapping, shared by the
runner (which adds the keys of its own run: output directory, device, collator, trackers' run
name) and by `tunelm export` (which adjusts it to a standalone run).

Pure: it imports no Transformers, PEFT or torch, so `tunelm export` and `tunelm recommend` never
load the Trainer::

    >>> from tunelm.config import Config
    >>> from tunelm.plan import plan_steps
    >>> cfg = Config()
    >>> training_kwargs(cfg, plan_steps(cfg.train, 800), "bf16")["optim"]
    'adamw_torch'
"""

from __future__ import annotations

from .config import report_targets

# train.optimizer -> TrainingArguments.optim
HF_OPTIMIZERS = {
    "adamw_torch": "adamw_torch",
    "adamw_8bit": "adamw_bnb_8bit",
    "paged_adamw_8bit": "paged_adamw_8bit",
    "paged_adamw_32bit": "paged_adamw_32bit",
}
# train.scheduler -> TrainingArguments.lr_scheduler_type
HF_SCHEDULERS = {
    "linear": "linear",
    "cosine": "cosine",
    "cosine_with_restarts": "cosine_with_restarts",
    "constant_with_warmup": "constant_with_warmup",
    "wsd": "warmup_stable_decay",
}
# model.method qlora: bitsandbytes' BitsAndBytesConfig, as QLoRA published it (NF4, double
# quantization); the compute dtype is added where it is known (`quantization_kwargs`)
QLORA_QUANTIZATION = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
                      "bnb_4bit_use_double_quant": True}
# train.sharding fsdp -> TrainingArguments.fsdp_config (Transformers 5 hands it to accelerate's
# FullyShardedDataParallelPlugin). FSDP2 (torch.distributed.fsdp.fully_shard): one shard group
# per decoder layer (the model's `_no_split_modules`, e.g. LlamaDecoderLayer), parameters
# re-sharded after each forward (ZeRO-3: weights, gradients and optimizer state all divided by
# the ranks); checkpoints as one full state dict, which tunelm gathers itself for best/.
FSDP_CONFIG = {"version": 2, "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
               "reshard_after_forward": True, "state_dict_type": "FULL_STATE_DICT"}


def training_kwargs(cfg, plan, precision: str) -> dict:
    """The `TrainingArguments` keyword arguments that follow from the config (a Config), its
    step plan (a `plan.StepPlan`) and the resolved precision (bf16, fp16 or fp32)."""
    t = cfg.train
    return dict(
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.learning_rate,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        max_steps=plan.total_steps,
        lr_scheduler_type=plan.scheduler,
        lr_scheduler_kwargs=plan.scheduler_kwargs,
        warmup_steps=plan.warmup_steps,
        optim=HF_OPTIMIZERS[t.optimizer],
        logging_steps=t.logging_steps,
        eval_strategy="steps",
        eval_steps=plan.eval_steps,
        report_to=report_to(t),
        seed=t.seed,
        data_seed=t.seed,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        **sharding_kwargs(t),
    )


def sharding_kwargs(train) -> dict:
    """The `TrainingArguments` of `train.sharding`: FSDP2's (`fsdp`, `fsdp_config`); none under
    `none`. (train.gradient_checkpointing stays the model's own, which works under FSDP2 at the
    cost of one more all-gather per layer in the backward pass.)"""
    if train.sharding != "fsdp":
        return {}
    return {"fsdp": True, "fsdp_config": dict(FSDP_CONFIG)}


def report_to(train) -> list[str] | str:
    """`TrainingArguments.report_to` of `train.report_to`: the trackers' names, or "none"."""
    return report_targets(train.report_to) or "none"


def lora_kwargs(lora) -> dict:
    """PEFT `LoraConfig` keyword arguments of a LoraConfig section."""
    return {
        "r": lora.r,
        "lora_alpha": lora.alpha,
        "lora_dropout": lora.dropout,
        "target_modules": lora.target_modules,
        "use_rslora": lora.use_rslora,
        "use_dora": lora.use_dora,
        "task_type": "CAUSAL_LM",
    }


def quantization_kwargs(compute_dtype) -> dict:
    """`BitsAndBytesConfig` keyword arguments of QLoRA with `compute_dtype` (a torch dtype, or
    its name in an exported file)."""
    return {**QLORA_QUANTIZATION, "bnb_4bit_compute_dtype": compute_dtype}
