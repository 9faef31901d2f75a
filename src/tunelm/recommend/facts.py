"""Model facts (hidden size, layers, parameters, family) without loading any weights.

From, in order: a local directory's `config.json`, a GGUF file's metadata, the embedded default,
the tiny test model, or the built-in table of popular open models (so a hub id works offline).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelError


@dataclass(frozen=True)
class ModelFacts:
    name: str
    family: str  # llama | qwen | mistral | gemma | phi | other
    hidden_size: int
    num_layers: int
    intermediate_size: int
    num_heads: int
    num_kv_heads: int
    vocab_size: int
    num_params: int
    source: str  # where these facts came from
    tie_embeddings: bool = False
    moe_experts: int = 0  # experts per MoE layer (0: dense)

    @property
    def params_b(self) -> float:
        return self.num_params / 1e9


# name -> (family, hidden, layers, intermediate, heads, kv_heads, vocab, params in billions, tied)
# Values from each model's published config.json on the Hugging Face hub.
TABLE: dict[str, tuple] = {
    "meta-llama/Llama-2-7b-hf": ("llama", 4096, 32, 11008, 32, 32, 32000, 6.74, False),
    "meta-llama/Llama-2-13b-hf": ("llama", 5120, 40, 13824, 40, 40, 32000, 13.0, False),
    "meta-llama/Llama-2-70b-hf": ("llama", 8192, 80, 28672, 64, 8, 32000, 69.0, False),
    "meta-llama/Meta-Llama-3-8B": ("llama", 4096, 32, 14336, 32, 8, 128256, 8.03, False),
    "meta-llama/Meta-Llama-3-70B": ("llama", 8192, 80, 28672, 64, 8, 128256, 70.6, False),
    "meta-llama/Llama-3.1-8B": ("llama", 4096, 32, 14336, 32, 8, 128256, 8.03, False),
    "meta-llama/Llama-3.1-70B": ("llama", 8192, 80, 28672, 64, 8, 128256, 70.6, False),
    "meta-llama/Llama-3.1-405B": ("llama", 16384, 126, 53248, 128, 8, 128256, 405.9, False),
    "meta-llama/Llama-3.2-1B": ("llama", 2048, 16, 8192, 32, 8, 128256, 1.24, True),
    "meta-llama/Llama-3.2-3B": ("llama", 3072, 28, 8192, 24, 8, 128256, 3.21, True),
    "meta-llama/Llama-3.3-70B-Instruct": ("llama", 8192, 80, 28672, 64, 8, 128256, 70.6, False),
    "Qwen/Qwen2-0.5B": ("qwen", 896, 24, 4864, 14, 2, 151936, 0.49, True),
    "Qwen/Qwen2-1.5B": ("qwen", 1536, 28, 8960, 12, 2, 151936, 1.54, True),
    "Qwen/Qwen2-7B": ("qwen", 3584, 28, 18944, 28, 4, 152064, 7.62, False),
    "Qwen/Qwen2-72B": ("qwen", 8192, 80, 29568, 64, 8, 152064, 72.7, False),
    "Qwen/Qwen2.5-0.5B": ("qwen", 896, 24, 4864, 14, 2, 151936, 0.49, True),
    "Qwen/Qwen2.5-1.5B": ("qwen", 1536, 28, 8960, 12, 2, 151936, 1.54, True),
    "Qwen/Qwen2.5-3B": ("qwen", 2048, 36, 11008, 16, 2, 151936, 3.09, True),
    "Qwen/Qwen2.5-7B": ("qwen", 3584, 28, 18944, 28, 4, 152064, 7.62, False),
    "Qwen/Qwen2.5-14B": ("qwen", 5120, 48, 13824, 40, 8, 152064, 14.8, False),
    "Qwen/Qwen2.5-32B": ("qwen", 5120, 64, 27648, 40, 8, 152064, 32.8, False),
    "Qwen/Qwen2.5-72B": ("qwen", 8192, 80, 29568, 64, 8, 152064, 72.7, False),
    "Qwen/Qwen3-0.6B": ("qwen", 1024, 28, 3072, 16, 8, 151936, 0.60, True),
    "Qwen/Qwen3-1.7B": ("qwen", 2048, 28, 6144, 16, 8, 151936, 1.72, True),
    "Qwen/Qwen3-4B": ("qwen", 2560, 36, 9728, 32, 8, 151936, 4.02, True),
    "Qwen/Qwen3-8B": ("qwen", 4096, 36, 12288, 32, 8, 151936, 8.19, False),
    "Qwen/Qwen3-14B": ("qwen", 5120, 40, 17408, 40, 8, 151936, 14.8, False),
    "Qwen/Qwen3-32B": ("qwen", 5120, 64, 25600, 64, 8, 151936, 32.8, False),
    "mistralai/Mistral-7B-v0.1": ("mistral", 4096, 32, 14336, 32, 8, 32000, 7.24, False),
    "mistralai/Mistral-7B-Instruct-v0.3": ("mistral", 4096, 32, 14336, 32, 8, 32768, 7.25, False),
    "mistralai/Mistral-Nemo-Base-2407": ("mistral", 5120, 40, 14336, 32, 8, 131072, 12.2, False),
    "mistralai/Mixtral-8x7B-v0.1": ("mistral", 4096, 32, 14336, 32, 8, 32000, 46.7, False),
    "google/gemma-2-2b": ("gemma", 2304, 26, 9216, 8, 4, 256000, 2.61, True),
    "google/gemma-2-9b": ("gemma", 3584, 42, 14336, 16, 8, 256000, 9.24, True),
    "google/gemma-2-27b": ("gemma", 4608, 46, 36864, 32, 16, 256000, 27.2, True),
    "google/gemma-3-1b-pt": ("gemma", 1152, 26, 6912, 4, 1, 262144, 1.0, True),
    "google/gemma-3-4b-pt": ("gemma", 2560, 34, 10240, 8, 4, 262208, 4.3, True),
    "google/gemma-3-12b-pt": ("gemma", 3840, 48, 15360, 16, 8, 262208, 12.2, True),
    "google/gemma-3-27b-pt": ("gemma", 5376, 62, 21504, 32, 16, 262208, 27.4, True),
    "microsoft/Phi-3-mini-4k-instruct": ("phi", 3072, 32, 8192, 32, 32, 32064, 3.82, False),
    "microsoft/Phi-3-medium-4k-instruct": ("phi", 5120, 40, 17920, 40, 10, 32064, 14.0, False),
    "microsoft/phi-4": ("phi", 5120, 40, 17920, 40, 10, 100352, 14.7, False),
    "HuggingFaceTB/SmolLM2-135M": ("llama", 576, 30, 1536, 9, 3, 49152, 0.135, True),
    "HuggingFaceTB/SmolLM2-360M": ("llama", 960, 32, 2560, 15, 5, 49152, 0.362, True),
    "HuggingFaceTB/SmolLM2-1.7B": ("llama", 2048, 24, 8192, 32, 32, 49152, 1.71, True),
}
_MOE = {"mistralai/Mixtral-8x7B-v0.1": 8}
_SUFFIXES = ("-Instruct", "-instruct", "-it", "-Chat", "-chat", "-hf", "-Base", "-pt")


def _table_key(name: str) -> str | None:
    """Exact id, or the same id without an instruct/chat/base suffix, matched case-insensitively."""
    lower = {k.lower(): k for k in TABLE}
    candidates = [name]
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            candidates.append(name[: -len(suffix)])
    candidates += [c + "-hf" for c in list(candidates)]
    for c in candidates:
        if c.lower() in lower:
            return lower[c.lower()]
    return None


def family_of(model_type: str, name: str = "") -> str:
    text = f"{model_type} {name}".lower()
    for family in ("qwen", "llama", "mistral", "mixtral", "gemma", "phi", "smollm"):
        if family in text:
            return {"mixtral": "mistral", "smollm": "llama"}.get(family, family)
    return "other"


def _from_table(name: str) -> ModelFacts | None:
    key = _table_key(name)
    if key is None:
        return None
    fam, h, layers, inter, heads, kv, vocab, params_b, tied = TABLE[key]
    return ModelFacts(name, fam, h, layers, inter, heads, kv, vocab, int(params_b * 1e9),
                      f"built-in table ({key})", tied, _MOE.get(key, 0))


def estimate_params(h, layers, inter, heads, kv, vocab, tied, experts=0) -> int:
    """Parameters of a Llama-style decoder from its shapes (attention + gated MLP + embeddings)."""
    kv_dim = h * kv // heads
    attn = h * h * 2 + h * kv_dim * 2
    mlp = 3 * h * inter * max(1, experts)
    emb = vocab * h * (1 if tied else 2)
    return layers * (attn + mlp + 2 * h) + emb + h


def from_config_json(path: Path, name: str) -> ModelFacts:
    cfg = json.loads(Path(path).read_text())
    cfg = cfg.get("text_config", cfg)  # multimodal wrappers keep the LM in text_config
    try:
        h = cfg["hidden_size"]
        layers = cfg["num_hidden_layers"]
        heads = cfg["num_attention_heads"]
    except KeyError as exc:
        raise ModelError(f"{path}: config.json has no {exc.args[0]}; is it a causal LM?") from None
    kv = cfg.get("num_key_value_heads") or heads
    inter = cfg.get("intermediate_size") or 4 * h
    vocab = cfg.get("vocab_size", 32000)
    tied = bool(cfg.get("tie_word_embeddings", False))
    experts = cfg.get("num_local_experts") or cfg.get("num_experts") or 0
    params = estimate_params(h, layers, inter, heads, kv, vocab, tied, experts)
    return ModelFacts(name, family_of(cfg.get("model_type", ""), name), h, layers, inter, heads,
                      kv, vocab, params, f"config.json ({path})", tied, experts)


def from_gguf(path: Path, name: str) -> ModelFacts:
    try:
        from gguf import GGUFReader
    except ImportError:
        raise ModelError("reading GGUF metadata needs the package gguf: pip install gguf") from None
    reader = GGUFReader(str(path))

    def get(key, default=None):
        field = reader.fields.get(key)
        return field.contents() if field is not None else default

    arch = get("general.architecture", "llama")
    h = get(f"{arch}.embedding_length")
    layers = get(f"{arch}.block_count")
    if h is None or layers is None:
        raise ModelError(f"{path}: GGUF metadata lacks {arch}.embedding_length/block_count")
    heads = get(f"{arch}.attention.head_count", 1)
    kv = get(f"{arch}.attention.head_count_kv", heads)
    params = sum(int(t.n_elements) for t in reader.tensors)
    vocab = get(f"{arch}.vocab_size") or len(get("tokenizer.ggml.tokens", []) or []) or 32000
    names = {t.name for t in reader.tensors}
    return ModelFacts(name, family_of(arch, name), int(h), int(layers),
                      int(get(f"{arch}.feed_forward_length", 4 * h)), int(heads), int(kv),
                      int(vocab), params, f"GGUF metadata ({Path(path).name})",
                      "output.weight" not in names)


def model_facts(name: str) -> ModelFacts:
    """Facts about `name` (a hub id, a local directory, a .gguf file, smollm2-135m or tiny)."""
    from ..config import EMBEDDED_NAMES
    from ..models import parse_tiny, resolve_source

    if name.lower() in EMBEDDED_NAMES:
        source = resolve_source(name)
        facts = from_gguf(Path(source.path) / source.gguf_file, name)
        return facts
    if name == "tiny" or name.startswith("tiny:"):
        s = parse_tiny(name)
        vocab = 259  # the byte-level test tokenizer: 256 bytes + 3 special tokens
        params = estimate_params(s["hidden"], s["layers"], s["intermediate"], s["heads"],
                                 s["kv_heads"], vocab, True)
        return ModelFacts(name, "llama", s["hidden"], s["layers"], s["intermediate"], s["heads"],
                          s["kv_heads"], vocab, params, "tiny test model spec", True)
    path = Path(name).expanduser()
    if name.endswith(".gguf") and path.is_file():
        return from_gguf(path, name)
    if (path / "config.json").is_file():
        return from_config_json(path / "config.json", name)
    facts = _from_table(name)
    if facts is not None:
        return facts
    known = ", ".join(sorted(TABLE)[:8]) + f", ... ({len(TABLE)} in all)"
    raise ModelError(
        f"unknown model {name!r}: it is not a local directory with config.json, not a .gguf file "
        f"and not in the built-in table ({known}). Download it (huggingface-cli download "
        f"{name} --local-dir DIR) and pass --model DIR, or pass a .gguf file."
    )
