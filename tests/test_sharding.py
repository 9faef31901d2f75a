"""train.sharding, without training: the config -> TrainingArguments mapping, the bad inputs
(exit 2, nothing started), and recommend's memory model with the weights, gradients and
optimizer state divided among the ranks."""

from __future__ import annotations

import pytest
import yaml

from tunelm import hf_args
from tunelm.cli import main
from tunelm.config import from_dict
from tunelm.errors import ConfigError
from tunelm.plan import plan_steps
from tunelm.recommend import Request, recommend
from tunelm.recommend import sources as S
from tunelm.recommend.facts import model_facts
from tunelm.recommend.memory import GIB, estimate

LLAMA_70B = "meta-llama/Llama-3.1-70B-Instruct"


def _cfg(**train):
    return from_dict({"model": {"name": "tiny", "method": train.pop("method", "full")},
                      "data": {"task": "contracts"}, "train": train})


# ---------------------------------------------------------------------------------------------
# config -> TrainingArguments
# ---------------------------------------------------------------------------------------------


def test_fsdp_maps_to_the_trainers_fsdp2_arguments():
    cfg = _cfg(devices=2, sharding="fsdp")
    kw = hf_args.training_kwargs(cfg, plan_steps(cfg.train, 100), "bf16")
    assert kw["fsdp"] is True
    assert kw["fsdp_config"] == {"version": 2, "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
                                 "reshard_after_forward": True,
                                 "state_dict_type": "FULL_STATE_DICT"}
    assert kw["fsdp_config"] is not hf_args.FSDP_CONFIG  # the Trainer edits the dict it is given


def test_no_sharding_adds_no_fsdp_argument():
    cfg = _cfg(devices=2)
    assert cfg.train.sharding == "none"
    kw = hf_args.training_kwargs(cfg, plan_steps(cfg.train, 100), "bf16")
    assert "fsdp" not in kw and "fsdp_config" not in kw


def test_the_trainer_accepts_the_fsdp_arguments():
    from transformers import TrainingArguments

    cfg = _cfg(devices=2, sharding="fsdp")
    kw = hf_args.training_kwargs(cfg, plan_steps(cfg.train, 100), "fp32")
    args = TrainingArguments(output_dir="unused", use_cpu=True, **kw)
    assert args.fsdp_plugin_args["fsdp_version"] == 2
    assert args.fsdp_plugin_args["state_dict_type"] == "FULL_STATE_DICT"


# ---------------------------------------------------------------------------------------------
# bad input: exit 2 with the reason, nothing started
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("train, model, search, needle", [
    ({"devices": 1, "sharding": "fsdp"}, {}, {},
     "train.sharding fsdp shares the model out among the ranks of a trial: it needs "
     "train.devices >= 2, got 1"),
    ({"devices": 2, "sharding": "fsdp"}, {"method": "qlora"}, {},
     "train.sharding fsdp with model.method qlora is not supported"),
    ({"devices": 2, "sharding": "fsdp"}, {}, {"objective": "exact_match"},
     "search.objective exact_match needs task metrics, which a trial under train.sharding fsdp"),
    ({"devices": 2, "sharding": "fsdp"}, {}, {"objective": "rougeL"},
     "search.objective rougeL needs task metrics, which a trial under train.sharding fsdp"),
    ({"sharding": "zero3"}, {}, {}, "train.sharding must be one of none, fsdp, got 'zero3'"),
])
def test_bad_sharding_configs_say_why(train, model, search, needle):
    raw = {"model": {"name": "tiny", **model}, "data": {"task": "contracts"}, "train": train,
           "search": search}
    with pytest.raises(ConfigError) as err:
        from_dict(raw)
    assert needle in str(err.value)


@pytest.mark.parametrize("flags, needle", [
    (["--sharding", "fsdp"], "it needs train.devices >= 2, got 1"),
    (["--sharding", "fsdp", "--devices", "2", "--set", "model.method=qlora"],
     "model.method qlora is not supported"),
    (["--sharding", "ddp"], "--sharding must be one of none, fsdp, got 'ddp'"),
    (["--devices", "4096", "--sharding", "fsdp"], "train.devices 4096 is more than this machine"),
])
def test_train_exits_2_and_starts_nothing(capsys, tmp_path, flags, needle):
    out = tmp_path / "run"
    try:
        code = main(["-q", "train", "presets/tiny.yaml", "--out", str(out), *flags])
    except SystemExit as exc:  # argparse's own exit for a flag's value
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert needle in err and "Traceback" not in err
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# recommend: the memory model with sharding
# ---------------------------------------------------------------------------------------------


def test_sharding_divides_weights_gradients_and_optimizer_state_but_not_activations():
    f = model_facts("meta-llama/Llama-3.1-8B-Instruct")
    kw = dict(method="full", micro_batch=2, seq_len=1024)
    one, eight = estimate(f, **kw), estimate(f, shards=8, **kw)
    layer = one.weights * (1 - f.vocab_size * f.hidden_size * 2 / f.num_params) / f.num_layers
    assert eight.weights == pytest.approx(one.weights / 8 + S.FSDP_GATHERED_LAYERS * layer)
    assert eight.trainable_states == pytest.approx(one.trainable_states / 8)
    assert (eight.activations, eight.logits, eight.overhead) == (one.activations, one.logits,
                                                                 one.overhead)


def test_70b_bf16_lora_on_8x80gb_fits_with_fsdp():
    rec = recommend(Request(model=LLAMA_70B, examples=20000, avg_tokens=512, gpus=8,
                            gpu_memory=80))
    a = rec.advice
    assert a["train.sharding"].value == "fsdp" and a["train.sharding"].source == "fsdp"
    assert "1/8 of the weights, gradients and optimizer state" in a["train.sharding"].reason
    assert a["train.devices"].value == 8
    assert rec.memory.total <= 0.9 * 80 * GIB
    assert not any("does not fit" in n for n in rec.notes)
    # the model alone, bf16, is more than one GPU holds: only sharding makes it fit
    unsharded = estimate(rec.model, method="lora", micro_batch=1, seq_len=a["data.max_length"].value,
                         gradient_checkpointing=True)
    assert unsharded.weights > 80 * GIB
    assert "fsdp" in S.SOURCES


def test_recommend_writes_sharding_and_devices_for_the_70b(tmp_path):
    out = tmp_path / "rec.yaml"
    assert main(["recommend", "--model", LLAMA_70B, "--examples", "20000", "--gpus", "8",
                 "--gpu-memory", "80", "--format", "yaml", "--out", str(out)]) == 0
    train = yaml.safe_load(out.read_text())["train"]
    assert train["sharding"] == "fsdp" and train["devices"] == 8


def test_full_fine_tuning_of_an_8b_on_8x80gb_is_sharded_and_lora_is_not():
    full = recommend(Request(model="meta-llama/Llama-3.1-8B-Instruct", examples=20000,
                             avg_tokens=512, method="full", gpus=8, gpu_memory=80))
    lora = recommend(Request(model="meta-llama/Llama-3.1-8B-Instruct", examples=20000,
                             avg_tokens=512, method="lora", gpus=8, gpu_memory=80))
    assert full.advice["train.sharding"].value == "fsdp"
    assert full.memory.total <= 0.9 * 80 * GIB
    assert lora.advice["train.sharding"].value == "none"  # fits one GPU: plain data parallel


def test_one_gpu_cannot_shard_and_says_what_would_fit():
    rec = recommend(Request(model=LLAMA_70B, examples=20000, avg_tokens=512, gpus=1,
                            gpu_memory=80))
    assert rec.advice["train.sharding"].value == "none"
    assert any("does not fit 80 GiB" in n and "more GPUs to shard it over" in n
               for n in rec.notes)


def test_the_sharding_rule_is_pure_and_reads_its_constants_from_the_sources():
    import ast
    from pathlib import Path

    from tunelm.recommend import sharding

    tree = ast.parse(Path(sharding.__file__).read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= {"__future__", "dataclasses", None, "advice", "memory"}, imported
    numbers = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
               and isinstance(n.value, (int, float)) and not isinstance(n.value, bool)]
    assert set(numbers) <= {0, 1, 2}, numbers
