"""Evaluation that costs what it must: intermediate evaluations on a seeded subset, the best
checkpoint's final score on the whole eval set, generation batched by length."""

import json

import pytest
from transformers import TrainerCallback

from tunelm.cli import main
from tunelm.config import from_dict
from tunelm.errors import ConfigError
from tunelm.runner import run_trial
from tunelm.runner.final_score import pruning_subset
from tunelm.runner.task_eval import length_batches

from .conftest import read_metrics


def test_the_pruning_subset_is_seeded_fixed_and_sorted():
    a = pruning_subset(40, 16, seed=0)
    assert a == pruning_subset(40, 16, seed=0)  # every trial of a study: the same examples
    assert a != pruning_subset(40, 16, seed=1)
    assert len(a) == 16 == len(set(a)) and a == sorted(a) and all(0 <= i < 40 for i in a)
    assert pruning_subset(40, 40, seed=0) is None  # the whole set: no subset at all
    assert pruning_subset(40, 64, seed=0) is None
    assert pruning_subset(40, None, seed=0) is None


def test_bad_pruning_examples_name_the_field_and_what_is_accepted(tmp_path):
    for bad in (0, -3, "many"):
        with pytest.raises(ConfigError) as err:
            from_dict({"eval": {"pruning_examples": bad}})
        assert f"eval.pruning_examples must be >= 1 (or empty: every evaluation on the whole " \
               f"eval set), got {bad!r}" in str(err.value)
    ok = from_dict({"data": {"task": "contracts"}, "eval": {"pruning_examples": None}})
    assert ok.eval.pruning_examples is None
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data:\n  task: contracts\neval:\n  pruning_examples: 0\n")
    assert main(["train", str(cfg)]) == 2


def test_length_batches_group_like_lengths_and_cover_every_prompt_once():
    lengths = [30, 5, 17, 5, 90, 16, 31]
    batches = length_batches(lengths, 3)
    assert [len(b) for b in batches] == [3, 3, 1]
    assert sorted(i for b in batches for i in b) == list(range(7))
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(lengths)  # shortest first: each batch pads to a like length
    assert length_batches([], 4) == []


def test_batched_generation_keeps_the_prompts_order(tiny_config):
    from tunelm.base_model import load_base_model
    from tunelm.runner.task_eval import generate

    cfg = tiny_config()
    model, tok = load_base_model(cfg.model, "fp32", "cpu")[:2]
    prompts = ["1 + 1 =", "a much longer prompt, with many more tokens in it than the others",
               "7", "twelve plus three equals", "x"]
    one_by_one = [generate(model, tok, [p], 6, 1, "cpu", "fp32")[0] for p in prompts]
    assert generate(model, tok, prompts, 6, 2, "cpu", "fp32") == one_by_one


class _PruneAtFirstEval(TrainerCallback):
    """A pruner's stand-in: stops the run at its first evaluation and says so (`pruned_at`)."""

    pruned_at = None

    def on_evaluate(self, args, state, control, metrics=None, **kw):
        self.pruned_at = state.global_step
        control.should_training_stop = True


def test_subset_during_the_run_whole_set_for_the_final_score(tiny_config, tmp_path):
    from tunelm.evaluate import evaluate_run

    json_eval = {"metric": "json", "max_new_tokens": 8, "batch_size": 4}
    dropout = {"r": 4, "alpha": 32, "dropout": 0.1}  # the runs draw random numbers as they train
    cfg = tiny_config(eval={**json_eval, "pruning_examples": 5}, lora=dropout)
    result = run_trial(cfg, tmp_path / "sub", progress=False)
    assert result["eval_examples"] == {"pruning": 5, "final": 16}
    final = result["final_score"]
    assert final["examples"] == 16 and final["checkpoint"] == "best"
    assert final["step"] == result["best_step"] and final["seconds"] > 0
    # the final score is the best checkpoint's loss on every eval example, as `tunelm evaluate`
    # computes it from best/; the run's own best is on the 5-example subset, another number
    whole = evaluate_run(tmp_path / "sub", cfg.data.eval, out=tmp_path / "ev")
    assert final["eval_loss"] == pytest.approx(whole["models"]["tuned"]["eval_loss"], rel=2e-6)
    assert abs(final["eval_loss"] - result["best_eval_loss"]) > 1e-4
    assert result["task_metrics"]["n"] == 16  # the task metric: also on the whole set
    saved = json.loads((tmp_path / "sub" / "result.json").read_text())
    assert saved["final_score"]["eval_loss"] == final["eval_loss"]

    # a subset as large as the eval set: one pass per evaluation, the best is the final score
    full = run_trial(tiny_config(eval={"pruning_examples": 16}, lora=dropout), tmp_path / "all",
                     progress=False)
    assert full["eval_examples"] == {"pruning": 16, "final": 16}
    assert full["final_score"]["eval_loss"] == full["best_eval_loss"]
    assert full["final_score"]["seconds"] == 0.0
    # the curves differ: the subset's losses are not the whole set's
    sub_curve = [r["eval_loss"] for r in read_metrics(tmp_path / "sub") if "eval_loss" in r]
    all_curve = [r["eval_loss"] for r in read_metrics(tmp_path / "all") if "eval_loss" in r]
    assert len(sub_curve) == len(all_curve) and sub_curve != pytest.approx(all_curve)
    # and the subset changes nothing in training: the same model is trained either way (the
    # same steps, the same random draws), so a smaller subset keeps a run's outcome
    train = [[r["train_loss"] for r in read_metrics(tmp_path / d) if "train_loss" in r]
             for d in ("sub", "all")]
    assert train[0] == train[1]


def test_a_pruned_trial_is_not_scored(tiny_config, tmp_path):
    cfg = tiny_config(eval={"metric": "json", "max_new_tokens": 8, "pruning_examples": 4})
    pruner = _PruneAtFirstEval()
    result = run_trial(cfg, tmp_path / "run", progress=False, callbacks=[pruner])
    assert pruner.pruned_at == result["final_step"] == 4
    assert result["final_score"] is None and result["task_metrics"] == {}
    assert not (tmp_path / "run" / "predictions.jsonl").exists()


def test_a_probe_is_judged_on_its_subset_curve(tiny_config, tmp_path):
    from tunelm.search.goal import value_of

    cfg = tiny_config(eval={"pruning_examples": 4})
    result = run_trial(cfg, tmp_path / "probe", progress=False, fraction=0.5)
    assert result["final_step"] == 6 and result["final_score"] is None
    # its value in a study: its best on the subset, the one figure it has
    value = value_of("eval_loss", "minimize", result)
    assert value == result["best_eval_loss"]
