"""The base model's life, in one place: load it (a Hugging Face id, a local directory, a GGUF file,
the embedded default or a tiny test model) on this machine's device in the config's precision;
lend it to a trial and get it back unchanged; put a run's `best/` weights on it.

    model, tok, device, precision = load(cfg.model)
    with adapted(model, cfg, hand_back=True) as tuned:   # LoRA attached (or full weights trainable)
        ...train tuned...
    # the base is as it came: adapters unloaded, full weights copied back, flags and mode restored

Where a model comes from (its source, tokenizer and GGUF cache) is `models`; this module decides
how it runs. The checks of what a device can do ("qlora needs CUDA", "fp16 needs CUDA") live here
and run once, when the model is loaded.
"""

from __future__ import annotations

import contextlib
import importlib.util
from pathlib import Path
from typing import NamedTuple

from . import hf_args
from .errors import ConfigError, ModelError
from .model_checks import check_source, load_failure
from .models import gguf_cache_path, load_tokenizer, resolve_source, tiny_model


class Loaded(NamedTuple):
    model: object
    tokenizer: object
    device: str
    precision: str


# ----------------------------------------------------------------------------------------------
# Device and precision
# ----------------------------------------------------------------------------------------------


def gpu_count() -> int:
    """CUDA devices visible to this process (0 on a CPU-only machine)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def device_type() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def cpu_has_fast_bf16() -> bool:
    """True where the CPU has native bf16 matrix instructions (AVX512-BF16 or AMX).

    Without them bf16 matmuls are emulated: measured on an AVX2-only EPYC, a bf16 matmul ran
    about 100x slower than fp32, so bf16 autocast is only used on CPUs that have them.
    """
    import torch

    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, c, lambda: False)()) for c in checks)


def resolve_precision(precision: str, device: str | None = None) -> str:
    """`auto` -> bf16 where the hardware runs it fast (CUDA with bf16, or a bf16-capable CPU)."""
    import torch

    device = device or device_type()
    if precision != "auto":
        if precision == "fp16" and device != "cuda":
            raise ConfigError("model.precision fp16 needs a CUDA GPU; use auto, bf16 or fp32")
        return precision
    if device == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


def check_method(method: str, device: str) -> None:
    """Raise ConfigError unless this device can run `model.method` (qlora: CUDA and bitsandbytes)."""
    if method != "qlora":
        return
    if device != "cuda":
        raise ConfigError(
            "model.method qlora needs a CUDA GPU (4-bit NF4 through bitsandbytes); this machine "
            "has none. Use --set model.method=lora"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError("model.method qlora needs bitsandbytes: pip install 'tunelm[qlora]'")


# ----------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------


def load(model_cfg) -> Loaded:
    """The base model of `model_cfg` (a ModelConfig) as every run resolves it: on this
    machine's device, in the config's precision resolved for it."""
    device = device_type()
    precision = resolve_precision(model_cfg.precision, device)
    model, tok, _ = load_base_model(model_cfg, precision, device)
    return Loaded(model, tok, device, precision)


def load_base_model(cfg, precision: str, device: str, place: bool = True):
    """(model, tokenizer, source) of `cfg` (a ModelConfig) in `precision` on `device`.

    LoRA and QLoRA on CUDA keep the frozen base weights in bf16/fp16; full fine-tuning and every
    CPU run keep fp32 weights (mixed precision then comes from autocast). `place` False leaves
    the weights in host memory, in the dtype `device` takes (a sharded trial: FSDP moves each
    rank's shard to its GPU, so no GPU ever holds the whole model).
    """
    import torch
    from transformers import AutoModelForCausalLM

    source = resolve_source(cfg.name)
    check_method(cfg.method, device)
    check_source(source, cfg.revision)
    try:
        tok = load_tokenizer(source, cfg.trust_remote_code, cfg.revision)
    except (OSError, ValueError) as exc:
        raise load_failure(cfg.name, exc) from None
    if source.kind == "tiny":
        model = tiny_model(source.tiny_spec, len(tok), tok.eos_token_id, tok.pad_token_id)
        return model, tok, source
    path = str(gguf_cache_path(source)) if source.kind in ("embedded", "gguf") else source.path
    kwargs = {"trust_remote_code": cfg.trust_remote_code}
    if cfg.revision:
        kwargs["revision"] = cfg.revision
    half = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    kwargs["dtype"] = half if (device == "cuda" and cfg.method != "full" and half) else torch.float32
    if cfg.method == "qlora":
        from transformers import BitsAndBytesConfig

        quantization = hf_args.quantization_kwargs(half or torch.bfloat16)
        kwargs.update(quantization_config=BitsAndBytesConfig(**quantization), device_map={"": 0})
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise load_failure(cfg.name, exc) from None
    if device == "cuda" and cfg.method != "qlora" and place:
        model.to("cuda")  # the rank's own GPU: launch.bind_rank_device
    return model, tok, source


class SharedBase:
    """A worker's base model: loaded on the first trial, then lent to every trial, each of
    which hands it back unchanged (`adapted`)."""

    def __init__(self):
        self._loaded: tuple | None = None

    def get(self, model_cfg) -> tuple:
        """(model, tokenizer) of `model_cfg`, loaded once."""
        if self._loaded is None:
            self._loaded = tuple(load(model_cfg)[:2])
        return self._loaded


# ----------------------------------------------------------------------------------------------
# The fine-tuning method, and handing the base back
# ----------------------------------------------------------------------------------------------


def attach_method(model, cfg, gradient_checkpointing: bool = False):
    """Wrap `model` for the fine-tuning method of `cfg` (a Config): PEFT LoRA/QLoRA, or full."""
    if cfg.model.method == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        if gradient_checkpointing:
            model.gradient_checkpointing_enable()
        return model
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if cfg.model.method == "qlora":
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=gradient_checkpointing
        )
    elif gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    lora = LoraConfig(**hf_args.lora_kwargs(cfg.lora))
    try:
        return get_peft_model(model, lora)
    except ValueError as exc:
        raise ConfigError(f"lora.target_modules {cfg.lora.target_modules!r}: {exc}") from None


@contextlib.contextmanager
def adapted(model, cfg, gradient_checkpointing: bool = False, *, hand_back: bool = True):
    """Attach the method of `cfg` to `model` and yield the model to train; with `hand_back`,
    give `model` back as it came when the block ends (also on an error): the adapter unloaded
    (LoRA never writes the frozen base weights), or, for full fine-tuning, every tensor copied
    back from a copy on the CPU; requires_grad flags, gradient checkpointing and train/eval mode
    put back. (QLoRA's prepare_model_for_kbit_training upcasts the unquantized base tensors to
    fp32 in place; their values are unchanged.) Without `hand_back` (a model loaded for this
    run alone) nothing is copied."""
    if not hand_back:
        yield attach_method(model, cfg, gradient_checkpointing)
        return
    import torch

    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    was_training, was_checkpointing = model.training, checkpointing_on(model)
    copy = None
    if cfg.model.method == "full":  # the one method that writes the base weights
        copy = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    tuned = None
    try:
        tuned = attach_method(model, cfg, gradient_checkpointing)
        yield tuned
    finally:
        if cfg.model.method != "full" and tuned is not None and hasattr(tuned, "unload"):
            tuned.unload()  # PEFT puts the base layers back in place of the LoRA layers
        if copy is not None:
            with torch.no_grad():
                for k, v in model.state_dict().items():
                    v.copy_(copy[k])
        for n, p in model.named_parameters():
            p.requires_grad_(flags.get(n, False))
            p.grad = None
        if checkpointing_on(model) and not was_checkpointing:
            model.gradient_checkpointing_disable()
            if hasattr(model, "disable_input_require_grads"):
                with contextlib.suppress(Exception):  # only set where checkpointing set it
                    model.disable_input_require_grads()
        model.train(was_training)


def checkpointing_on(model) -> bool:
    """Whether activation checkpointing is on (Transformers renamed the property in 5.x)."""
    for name in ("is_activation_checkpointing", "is_gradient_checkpointing"):
        if hasattr(type(model), name):
            return bool(getattr(model, name))
    return False


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


# ----------------------------------------------------------------------------------------------
# A run's best/ checkpoint
# ----------------------------------------------------------------------------------------------


def load_best(model, best: Path, method: str) -> None:
    """Put the weights a run kept in `best` into `model`: the adapter into a model that carries
    one (`attach_method`), or the full fine-tuning weights (tied weights are saved once)."""
    from safetensors.torch import load_file

    best = Path(best)
    if method != "full":
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, load_file(best / "adapter_model.safetensors"))
        return
    state = {}
    for f in sorted(best.glob("*.safetensors")):
        state.update(load_file(f))
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {k for k in missing if "lm_head" in k or "embed" in k}
    if unexpected or set(missing) - tied:
        raise ModelError(f"{best}: the saved weights do not fit the base model (missing "
                         f"{sorted(set(missing) - tied)[:3]}, unexpected {sorted(unexpected)[:3]})")


def load_tuned(cfg, best: Path) -> Loaded:
    """The base model of `cfg` (a Config) with the adapter kept in `best` on it, ready to
    score; for full fine-tuning the base alone (put the weights on with `load_best`, after
    scoring the base if wanted)."""
    model, tok, device, precision = load(cfg.model)
    if cfg.model.method != "full":
        model = attach_method(model, cfg)
        load_best(model, best, cfg.model.method)
    return Loaded(model, tok, device, precision)
