"""Packing without leaking: a packed batch has the loss of the same examples unpacked."""

import pytest

from tunelm.data import IGNORE, Collator, encode
from tunelm.data.tokenize import pack_dataset, pack_groups
from tunelm.models import parse_tiny, tiny_model, tiny_tokenizer

from .conftest import arithmetic_rows


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def examples(tok):
    rows = arithmetic_rows(7, 3)
    rows[2]["messages"][0]["content"] += " and a longer question"  # unequal lengths
    return [encode(tok, r["messages"], completion_only=True) for r in rows]


def _dataset(examples):
    from datasets import Dataset

    return Dataset.from_dict({"input_ids": [e.input_ids for e in examples],
                              "labels": [e.labels for e in examples]})


def _loss(model, batch):
    """The loss as the Trainer computes it: the Trainer sets `model.config.use_cache` to
    `TrainingArguments.use_cache` (False); with a cache, Transformers skips the detection of
    packed sequences from position ids."""
    import torch

    with torch.no_grad():
        return model(**batch, use_cache=False).loss.item()


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_batch_has_the_loss_of_the_examples_unpacked(tok, examples, attn):
    model = tiny_model(parse_tiny("tiny"), len(tok), tok.eos_token_id, tok.pad_token_id)
    model.config._attn_implementation = attn
    model.eval()
    collate = Collator(tok.pad_token_id)
    packed = pack_dataset(_dataset(examples), 120)
    rows = [packed[i] for i in range(len(packed))]
    assert len(rows) < len(examples) and sum(len(r["seq_lens"]) for r in rows) == len(examples)

    unpacked_loss = _loss(model, collate(examples))
    batch = collate(rows)
    assert "attention_mask" not in batch and "position_ids" in batch
    assert _loss(model, batch) == pytest.approx(unpacked_loss, rel=1e-5)

    # the check can fail: the same packed rows attending across examples (positions running on)
    import torch

    leaky = {"input_ids": batch["input_ids"], "labels": batch["labels"],
             "attention_mask": torch.ones_like(batch["input_ids"])}
    assert abs(_loss(model, leaky) - unpacked_loss) > 1e-3


def test_pack_dataset_keeps_tokens_and_masks_each_first_label(examples):
    packed = pack_dataset(_dataset(examples), 120)
    ids = [t for i in range(len(packed)) for t in packed[i]["input_ids"]]
    assert ids == [t for e in examples for t in e.input_ids]
    labels = [x for i in range(len(packed)) for x in packed[i]["labels"]]
    expected = [x for e in examples for x in [IGNORE, *e.labels[1:]]]
    assert labels == expected
    assert all(len(packed[i]["input_ids"]) <= 120 for i in range(len(packed)))


def test_pack_groups_is_greedy_in_order():
    assert pack_groups([3, 3, 5, 9, 1], 6) == [2, 1, 1, 1]
    assert pack_groups([7], 6) == [1]  # an example never packs with less than itself


def test_position_ids_restart_at_every_example_and_at_the_padding(tok):
    collate = Collator(tok.pad_token_id)
    batch = collate([{"input_ids": [5] * 5, "labels": [5] * 5, "seq_lens": [2, 3]},
                     {"input_ids": [5] * 3, "labels": [5] * 3, "seq_lens": [3]}])
    assert batch["position_ids"].tolist() == [[0, 1, 0, 1, 2, 0, 1, 2],
                                              [0, 1, 2, 0, 1, 2, 3, 4]]
    assert batch["labels"][1, 3:].tolist() == [IGNORE] * 5


def test_the_trainer_computes_the_packed_loss_without_leaking(tok, examples, tmp_path):
    from transformers import Trainer, TrainingArguments

    model = tiny_model(parse_tiny("tiny"), len(tok), tok.eos_token_id, tok.pad_token_id)
    trainer = Trainer(model=model, args=TrainingArguments(output_dir=str(tmp_path), use_cpu=True,
                                                          report_to=[]))
    assert model.config.use_cache is False
    collate = Collator(tok.pad_token_id)
    packed = pack_dataset(_dataset(examples), 120)
    import torch

    with torch.no_grad():
        unpacked = trainer.compute_loss(model, collate(examples)).item()
        together = trainer.compute_loss(model, collate([packed[i] for i in range(len(packed))]))
    assert together.item() == pytest.approx(unpacked, rel=1e-5)


def test_a_packed_trial_trains_on_fewer_longer_sequences(tiny_config, tmp_path, monkeypatch):
    from tunelm.runner.trial import run_trial

    monkeypatch.setenv("TUNELM_DATA_CACHE", str(tmp_path / "cache"))
    cfg = tiny_config(data={"packing": True, "max_length": 128},
                      train={"max_steps": 4, "eval_steps": 2, "batch_size": 4})
    result = run_trial(cfg, tmp_path / "run", progress=False)
    assert result["status"] == "ok" and result["data"]["packed"] is True
    assert result["data"]["train_sequences"] < result["data"]["train"]["examples"]
