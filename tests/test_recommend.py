import json

import pytest
import yaml

from tunelm.cli import main
from tunelm.config import from_dict
from tunelm.errors import ConfigError, DataError, ModelError
from tunelm.recommend import Request, formula_lr, model_facts, recommend
from tunelm.recommend.memory import estimate, lora_params

from .conftest import arithmetic_rows, write_jsonl


@pytest.mark.parametrize("model, published", [
    ("meta-llama/Llama-3.1-8B", 2.86e-4),
    ("meta-llama/Llama-3.2-1B", 4.9e-4),
    ("meta-llama/Llama-3.1-70B", 1.66e-4),
    ("Qwen/Qwen3-8B", 4.73e-4),
])
def test_formula_matches_published_figures(model, published):
    f = model_facts(model)
    lora, _, assumed = formula_lr(f.hidden_size, f.family, "lora")
    assert lora == pytest.approx(published, rel=0.01)
    assert not assumed
    full, _, _ = formula_lr(f.hidden_size, f.family, "full")
    assert full == pytest.approx(lora / 10, rel=1e-12)


def test_recommended_rate_is_the_formula_at_the_reference_setting():
    rec = recommend(Request(model="meta-llama/Llama-3.1-8B-Instruct", examples=5000,
                            avg_tokens=400, gpus=1, gpu_memory=80))
    assert rec.advice["train.learning_rate"].value == pytest.approx(2.86e-4, rel=0.01)
    assert "tinker" == rec.advice["train.learning_rate"].source
    assert rec.model.source.startswith("built-in table")


def test_unknown_family_states_its_assumed_exponent():
    rec = recommend(Request(model="google/gemma-2-9b", examples=3000, avg_tokens=300, gpus=1,
                            gpu_memory=80))
    assert "exponent 0.781 is assumed" in rec.advice["train.learning_rate"].reason


def test_alpha_rescales_the_rate():
    base = recommend(Request(model="meta-llama/Llama-3.1-8B", examples=3000, avg_tokens=300,
                             gpus=1, gpu_memory=80, rank=64))
    hot = recommend(Request(model="meta-llama/Llama-3.1-8B", examples=3000, avg_tokens=300,
                            gpus=1, gpu_memory=80, rank=64, alpha=128))
    lr0 = base.advice["train.learning_rate"].value
    assert hot.advice["train.learning_rate"].value == pytest.approx(lr0 * 32 / 128, rel=0.01)
    assert "32/128" in hot.advice["train.learning_rate"].reason
    assert hot.config().lora.alpha == 128


def test_rslora_equivalent_is_worked_out():
    rec = recommend(Request(model="meta-llama/Llama-3.1-8B", examples=3000, avg_tokens=300,
                            gpus=1, gpu_memory=80, rank=16, alpha=32, use_rslora=True))
    lr0 = formula_lr(4096, "llama")[0]
    # alpha 32 at rank 16 under alpha/sqrt(r) acts like standard alpha 128
    assert rec.advice["train.learning_rate"].value == pytest.approx(lr0 / 4, rel=0.01)
    assert "acts like standard alpha 128" in rec.advice["train.learning_rate"].reason


def test_rate_is_rank_independent_at_fixed_alpha():
    a = recommend(Request(model="Qwen/Qwen3-8B", examples=3000, avg_tokens=300, gpus=1,
                          gpu_memory=80, rank=8))
    b = recommend(Request(model="Qwen/Qwen3-8B", examples=3000, avg_tokens=300, gpus=1,
                          gpu_memory=80, rank=64))
    assert a.advice["train.learning_rate"].value == b.advice["train.learning_rate"].value


def test_square_root_rule_when_the_batch_changes():
    base = recommend(Request(model="meta-llama/Llama-3.1-8B", examples=20000, avg_tokens=300,
                             gpus=1, gpu_memory=80))
    big = recommend(Request(model="meta-llama/Llama-3.1-8B", examples=20000, avg_tokens=300,
                            gpus=1, gpu_memory=80, effective_batch=128))
    assert big.advice["train.learning_rate"].value == pytest.approx(
        base.advice["train.learning_rate"].value * 2, rel=0.01)  # sqrt(128/32)
    assert "square-root" in big.advice["train.learning_rate"].reason


def test_sources_disagree_for_70b_and_both_are_shown():
    rec = recommend(Request(model="meta-llama/Llama-3.1-70B", examples=20000, avg_tokens=400,
                            gpus=8, gpu_memory=80, method="lora"))
    lr = rec.advice["train.learning_rate"]
    assert lr.others and lr.others[0]["value"] == [1e-5, 5e-5]
    assert any("disagree" in n and "follows" in n for n in rec.notes)
    space = rec.search_space["train.learning_rate"]
    assert space["low"] <= 1e-5 and space["high"] >= lr.value * 9


def test_batch_epochs_and_steps_follow_dataset_size():
    small = recommend(Request(model="meta-llama/Llama-3.2-1B", examples=300, avg_tokens=200,
                              gpus=1, gpu_memory=80))
    c = small.config()
    assert c.train.epochs == 3
    effective = c.train.batch_size * c.train.grad_accum
    assert effective < 16 and -(-300 // effective) * 3 >= 100  # lowered to reach 100 steps
    assert c.train.weight_decay == 0.1 and c.train.warmup_ratio == 0.1
    big = recommend(Request(model="meta-llama/Llama-3.2-1B", examples=100_000, avg_tokens=200,
                            gpus=1, gpu_memory=80)).config()
    assert big.train.epochs == 1 and big.train.batch_size * big.train.grad_accum == 64
    assert big.lora.r == 32


def test_micro_batch_fits_memory_and_accumulation_keeps_the_effective_batch():
    roomy = recommend(Request(model="meta-llama/Llama-3.1-8B", examples=20000, avg_tokens=1500,
                              gpus=1, gpu_memory=80)).config()
    tight = recommend(Request(model="meta-llama/Llama-3.1-8B", examples=20000, avg_tokens=1500,
                              gpus=1, gpu_memory=24)).config()
    assert tight.train.batch_size < roomy.train.batch_size
    assert (tight.train.batch_size * tight.train.grad_accum
            == roomy.train.batch_size * roomy.train.grad_accum)


def test_qlora_settings():
    c = recommend(Request(model="meta-llama/Llama-3.1-8B", examples=3000, avg_tokens=400,
                          gpus=1, gpu_memory=24, method="qlora")).config()
    assert c.train.max_grad_norm == 0.3 and c.train.optimizer == "paged_adamw_8bit"
    assert c.train.gradient_checkpointing


def test_memory_parts():
    f = model_facts("meta-llama/Llama-3.1-8B")
    # r=16 on all seven projections of 32 layers: the well-known 42M trainable parameters
    assert lora_params(f, 16) == 41_943_040
    lora = estimate(f, method="lora", micro_batch=1, seq_len=512)
    full = estimate(f, method="full", micro_batch=1, seq_len=512)
    qlora = estimate(f, method="qlora", micro_batch=1, seq_len=512, optimizer_bytes=2)
    assert qlora.weights < lora.weights < full.weights
    assert full.trainable_states > 10 * lora.trainable_states
    double = estimate(f, method="lora", micro_batch=2, seq_len=512)
    assert double.activations == pytest.approx(2 * lora.activations)
    ckpt = estimate(f, method="lora", micro_batch=2, seq_len=512, gradient_checkpointing=True)
    assert ckpt.activations < double.activations / 5


def test_facts_from_config_json_and_gguf(tmp_path):
    cfg = {"model_type": "qwen2", "hidden_size": 896, "num_hidden_layers": 24,
           "num_attention_heads": 14, "num_key_value_heads": 2, "intermediate_size": 4864,
           "vocab_size": 151936, "tie_word_embeddings": True}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    f = model_facts(str(tmp_path))
    assert f.family == "qwen" and f.hidden_size == 896
    assert f.num_params == pytest.approx(0.494e9, rel=0.02)  # Qwen2.5-0.5B
    emb = model_facts("smollm2-135m")
    assert emb.source.startswith("GGUF metadata")
    assert emb.hidden_size == 576 and emb.num_layers == 30
    assert emb.num_params == pytest.approx(134.5e6, rel=0.02)


def test_unknown_model_lists_how_to_proceed():
    with pytest.raises(ModelError, match="huggingface-cli download"):
        model_facts("someone/unheard-of-7b")


def test_yaml_output_has_reasons_and_runs_with_train(tmp_path, capsys):
    data = write_jsonl(tmp_path / "train.jsonl", arithmetic_rows(160, 0))
    out = tmp_path / "rec.yaml"
    assert main(["recommend", "--model", "tiny", "--data", str(data), "--format", "yaml",
                 "--out", str(out)]) == 0
    text = out.read_text()
    assert "# 5e-5 x 10 x (2000/64)^0.781" in text
    cfg = from_dict(yaml.safe_load(text))
    assert cfg.data.train == str(data)
    assert cfg.search.space["train.learning_rate"]["log"] is True
    # unchanged: the recommendation is complete as it stands
    assert main(["-q", "train", str(out), "--out", str(tmp_path / "run")]) == 0
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["plan"]["total_steps"] >= 100 and result["best_eval_loss"] is not None


def test_json_output_carries_reasons_beside_values(tmp_path, capsys):
    data = write_jsonl(tmp_path / "train.jsonl", arithmetic_rows(40, 0))
    assert main(["recommend", "--model", "tiny", "--data", str(data), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["config"]["train"]["learning_rate"] == doc["advice"]["train.learning_rate"]["value"]
    assert "Tinker" in doc["advice"]["train.learning_rate"]["source"]
    assert doc["dataset"]["examples"] == 40


def test_text_output(capsys):
    assert main(["recommend", "--model", "Qwen/Qwen2.5-7B", "--examples", "2000",
                 "--avg-tokens", "300", "--gpus", "1", "--gpu-memory", "40"]) == 0
    text = capsys.readouterr().out
    assert "train.learning_rate" in text and "[tinker]" in text and "sources:" in text
    assert "search space" in text and "budget:" in text


@pytest.mark.parametrize("argv, needle", [
    (["--model", "nobody/nothing-13b", "--examples", "10"], "unknown model 'nobody/nothing-13b'"),
    (["--model", "Qwen/Qwen3-8B", "--examples", "10", "--gpu-memory", "-4"],
     "--gpu-memory must be > 0 GiB, got -4.0"),
    (["--model", "Qwen/Qwen3-8B", "--data", "/no/such/file.jsonl"], "does not exist"),
    (["--model", "Qwen/Qwen3-8B", "--examples", "10", "--method", "dora"], "--method must be one of"),
    (["--model", "Qwen/Qwen3-8B"], "give --data PATH"),
])
def test_bad_input_exits_2(capsys, argv, needle):
    assert main(["recommend", *argv]) == 2
    assert needle in capsys.readouterr().err


def test_empty_dataset_exits_2(tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["recommend", "--model", "Qwen/Qwen3-8B", "--data", str(empty)]) == 2
    assert "is empty" in capsys.readouterr().err


def test_library_errors_are_typed():
    with pytest.raises(ConfigError):
        recommend(Request(model="tiny", examples=0))
    with pytest.raises(DataError):
        recommend(Request(model="tiny", data="/nope.jsonl"))


def test_measure_uses_a_few_real_steps(tmp_path, capsys):
    data = write_jsonl(tmp_path / "train.jsonl", arithmetic_rows(60, 0))
    assert main(["-q", "recommend", "--model", "tiny", "--data", str(data), "--measure",
                 "--format", "json"]) == 0
    budget = json.loads(capsys.readouterr().out)["budget"]
    assert budget["throughput_source"] == "measured (--measure)"
    assert budget["tokens_per_s"] > 0
