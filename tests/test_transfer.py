"""tunelm transfer: the learning-rate transfer and the rank comparison as pure functions, then a
tiny proxy study (hidden 32, four learning rates) transferred to a larger tiny model end to end,
and the bad inputs through the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tunelm.cli import main
from tunelm.config import from_dict
from tunelm.errors import ConfigError, TrainingError
from tunelm.recommend import formula_lr, model_facts
from tunelm.search import run_search
from tunelm.search.study import open_study
from tunelm.transfer import rank_shift, run_transfer, slug, target_space, transfer_params

from .conftest import arithmetic_rows, write_jsonl

optuna.logging.set_verbosity(optuna.logging.WARNING)
PROXY, TARGET = "tiny:hidden=32", "tiny:hidden=64,layers=2"
PROXY_LRS = [1e-3, 3e-3, 1e-2, 3e-2]
STEPS = 12


# ---------------------------------------------------------------------------------------------
# Pure functions


def test_learning_rate_moves_by_the_formula_ratio_and_the_rest_is_kept():
    small, big = model_facts(PROXY), model_facts(TARGET)
    params = {"train.learning_rate": 3e-3, "lora.r": 8, "train.warmup_ratio": 0.05,
              "train.weight_decay": 0.1, "lora.dropout": 0.05}
    new, why = transfer_params(params, small, big, "lora")
    ratio = formula_lr(64, "llama")[0] / formula_lr(32, "llama")[0]
    assert ratio == pytest.approx((32 / 64) ** 0.781)  # the rule's exponent for the Llama family
    assert new["train.learning_rate"] == float(f"{3e-3 * ratio:.3g}") == 0.00175
    assert {k: new[k] for k in params if k != "train.learning_rate"} == {
        "lora.r": 8, "train.warmup_ratio": 0.05, "train.weight_decay": 0.1, "lora.dropout": 0.05}
    lr = why["learning_rate"]
    assert lr["formula_ratio"] == pytest.approx(ratio)
    assert lr["proxy_formula"]["hidden_size"] == 32 and lr["target_formula"]["hidden_size"] == 64
    assert lr["target_formula"]["formula_lr"] == pytest.approx(formula_lr(64, "llama")[0])
    assert "Tinker" in lr["source"] and "2000" in lr["rule"]
    assert why["rank"] == {"proxy": 8, "target": 8, "how": "kept"}
    assert "train.weight_decay" in why["kept"] and any("lora.alpha" in k for k in why["kept"])

    doubled, why = transfer_params(params, small, big, "lora", double_rank=True)
    assert doubled["lora.r"] == 16 and why["rank"]["how"].startswith("doubled")
    assert doubled["train.learning_rate"] == new["train.learning_rate"]  # alpha fixed: same rate


def test_double_rank_with_rslora_divides_the_rate_by_sqrt2():
    small, big = model_facts(PROXY), model_facts(TARGET)
    new, why = transfer_params({"train.learning_rate": 1e-2, "lora.r": 4}, small, big, "lora",
                               double_rank=True, rslora=True)
    ratio = why["learning_rate"]["formula_ratio"]
    assert new["train.learning_rate"] == float(f"{1e-2 * ratio / math.sqrt(2):.3g}")
    assert any("sqrt(2)" in n for n in why["notes"])


def test_lora_to_full_fine_tuning_on_the_same_model_takes_a_tenth():
    same = model_facts(TARGET)
    new, why = transfer_params({"train.learning_rate": 2e-3, "lora.r": 8, "lora.dropout": 0.05,
                                "train.warmup_ratio": 0.1}, same, same, "full",
                               proxy_method="lora")
    assert new == {"train.learning_rate": 2e-4, "train.warmup_ratio": 0.1}
    assert why["learning_rate"]["formula_ratio"] == pytest.approx(0.1)
    assert why["rank"] is None
    notes = " ".join(why["notes"])
    assert "full fine-tuning: the rule gives" in notes and "lora.r dropped" in notes


def test_rank_shift_on_known_orders():
    same = rank_shift([4, 1, 9], [4, 1, 9])
    assert [r["move"] for r in same.rows] == [0, 0, 0]
    assert same.spearman_rho == 1 and same.kendall_tau == 1
    rev = rank_shift([1, 2, 3, 4], [4, 3, 2, 1])
    assert rev.spearman_rho == -1 and rev.kendall_tau == -1
    assert [(r["proxy_rank"], r["target_rank"], r["move"]) for r in rev.rows] == [
        (1, 4, -3), (2, 3, -1), (3, 2, 1), (4, 1, 3)]
    one_swap = rank_shift(["a", "b", "c", "d"], ["b", "a", "c", "d"])
    # Spearman: 1 - 6 * (1 + 1) / (4 * 15) = 0.8; Kendall: (5 concordant - 1 discordant) / 6
    assert one_swap.spearman_rho == pytest.approx(0.8)
    assert one_swap.kendall_tau == pytest.approx(4 / 6)
    assert rank_shift([5], [5]).spearman_rho is None
    with pytest.raises(ValueError):
        rank_shift([1, 2], [1, 3])


def test_target_space_scales_the_rate_and_keeps_transferred_values_inside():
    cfg = from_dict({"data": {"task": "contracts"}, "search": {"space": {
        "train.learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        "lora.r": {"type": "categorical", "choices": [4, 8]},
        "lora.dropout": {"type": "float", "low": 0.0, "high": 0.1}}}})
    space = target_space(cfg, [{"train.learning_rate": 5e-4, "lora.r": 8}], 0.5,
                         double_rank=True)
    assert space["train.learning_rate"] == {"type": "float", "low": 5e-5, "high": 5e-3,
                                            "log": True}
    assert space["lora.r"]["choices"] == [8, 16]
    assert "lora.dropout" not in space  # not transferred: not a dimension of the new study


def test_slug():
    assert slug(TARGET) == "tiny-hidden-64-layers-2"
    assert slug("HuggingFaceTB/SmolLM2-360M") == "smollm2-360m"


# ---------------------------------------------------------------------------------------------
# End to end on tiny models


@pytest.fixture(scope="module")
def proxy_study(tmp_path_factory) -> Path:
    """A finished proxy study: tiny hidden-32 model, a grid of four learning rates, 12 steps."""
    root = tmp_path_factory.mktemp("transfer")
    train = write_jsonl(root / "data" / "train.jsonl", arithmetic_rows(64, 0))
    evals = write_jsonl(root / "data" / "eval.jsonl", arithmetic_rows(16, 1))
    cfg = from_dict({
        "model": {"name": PROXY, "precision": "fp32"},
        "lora": {"r": 4, "alpha": 32, "dropout": 0.0},
        "data": {"train": str(train), "eval": str(evals), "max_length": 64},
        "train": {"learning_rate": 3e-3, "batch_size": 8, "max_steps": STEPS, "eval_steps": 4,
                  "warmup_ratio": 0.1, "early_stopping_patience": None},
        "eval": {"metric": "none"},
        "search": {"strategy": "grid", "pruner": "none", "curve_pruner": False, "trials": None,
                   "space": {"train.learning_rate": {"type": "categorical",
                                                     "choices": PROXY_LRS}}},
    })
    out = root / "proxy"
    result = run_search(cfg, out)
    assert [t["state"] for t in result.trials] == ["COMPLETE"] * 4
    return out


def test_transfer_runs_the_top_configs_on_the_larger_model(proxy_study):
    result = run_transfer(proxy_study, TARGET, top=3, fraction=0.5)
    out = proxy_study.parent / "proxy-to-tiny-hidden-64-layers-2"  # the default directory
    assert result.out == out and (out / "transfer.json").exists()

    proxy, _ = open_study(None, proxy_study)
    ranked = sorted(proxy.get_trials(states=(TrialState.COMPLETE,)), key=lambda t: t.value)
    assert [c["proxy_trial"] for c in result.configs] == [t.number for t in ranked[:3]]

    target, cfg = open_study(None, out)
    trials = target.get_trials()
    assert len(trials) == 3 and all(t.state == TrialState.COMPLETE for t in trials)
    assert cfg.model.name == TARGET and target.user_attrs["strategy"] == "transfer"
    ratio = formula_lr(64, "llama")[0] / formula_lr(32, "llama")[0]
    by_proxy = {t.user_attrs["proxy_trial"]: t for t in trials}
    for c in result.configs:
        t = by_proxy[c["proxy_trial"]]
        assert t.user_attrs["fraction"] == 0.5
        proxy_lr = proxy.trials[c["proxy_trial"]].user_attrs["params"]["train.learning_rate"]
        assert t.user_attrs["params"]["train.learning_rate"] == float(f"{proxy_lr * ratio:.3g}")
        assert t.user_attrs["params"]["lora.r"] == 4  # kept (no --double-rank)
        run = json.loads((Path(t.user_attrs["trial_dir"]) / "result.json").read_text())
        assert run["final_step"] == STEPS // 2  # half the planned steps, on the target model
        assert "model tiny:hidden=64,layers=2" in (Path(t.user_attrs["trial_dir"]) /
                                                   "train.log").read_text()

    record = json.loads((out / "transfer.json").read_text())
    assert record["target_model"] == TARGET and record["fraction"] == 0.5
    assert len(record["configs"]) == 3
    for c in record["configs"]:
        assert {"proxy_params", "proxy_value", "proxy_rank", "target_params", "explanation",
                "target_value", "target_rank", "move"} <= set(c)
        assert c["target_value"] == by_proxy[c["proxy_trial"]].value
        assert c["move"] == c["proxy_rank"] - c["target_rank"]
    assert sorted(c["target_rank"] for c in record["configs"]) == [1, 2, 3]
    assert record["winner"]["target_trial"] == target.best_trial.number
    assert record["winner"]["target_value"] == target.best_value
    assert -1 <= record["spearman_rho"] <= 1 and -1 <= record["kendall_tau"] <= 1

    with pytest.raises(ConfigError, match="already holds a study"):
        run_transfer(proxy_study, TARGET, top=3, fraction=0.5)


def test_cli_transfer_prints_the_table(proxy_study, tmp_path, capsys):
    out = tmp_path / "big"
    assert main(["-q", "transfer", "--from", str(proxy_study), "--to-model", TARGET, "--top",
                 "2", "--fraction", "0.25", "--double-rank", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "winner: proxy trial" in text and "Spearman rho" in text and "transfer.json" in text
    record = json.loads((out / "transfer.json").read_text())
    assert [c["target_params"]["lora.r"] for c in record["configs"]] == [8, 8]
    assert all(c["explanation"]["rank"]["how"].startswith("doubled") for c in record["configs"])


def test_cli_transfer_from_a_storage_url(proxy_study, tmp_path, capsys):
    url = f"sqlite:///{proxy_study / 'study.db'}"
    assert main(["-q", "transfer", "--from", url, "--to-model", TARGET, "--top", "1",
                 "--out", str(tmp_path / "t")]) == 2
    assert "name the study with --study NAME" in capsys.readouterr().err
    assert main(["-q", "transfer", "--from", url, "--study", "proxy", "--to-model", TARGET,
                 "--top", "1", "--fraction", "0.25", "--out", str(tmp_path / "t")]) == 0
    record = json.loads((tmp_path / "t" / "transfer.json").read_text())
    assert len(record["configs"]) == 1 and record["winner"]["proxy_rank"] == 1


def test_every_config_failing_on_the_target_is_a_failed_run(proxy_study, tmp_path, capsys,
                                                            monkeypatch):
    """Every target run diverges (simulated: the runner raises as on a divergence): no winner,
    transfer.json still written, exit code 1."""
    import tunelm.search.objective as objective

    def diverge(cfg, out, **kw):
        Path(out).mkdir(parents=True, exist_ok=True)
        raise TrainingError("diverged", result={"stop_reason": "diverged: loss 3x its minimum"})

    monkeypatch.setattr(objective, "run_trial", diverge)
    assert main(["-q", "transfer", "--from", str(proxy_study), "--to-model", TARGET, "--top",
                 "2", "--out", str(tmp_path / "blown")]) == 1
    assert "no transferred config finished" in capsys.readouterr().err
    record = json.loads((tmp_path / "blown" / "transfer.json").read_text())
    assert record["winner"] is None
    assert [c["target_state"] for c in record["configs"]] == ["PRUNED", "PRUNED"]
    assert [c["target_rank"] for c in record["configs"]] == [1, 2]  # the proxy's order kept
    assert record["configs"][0]["target_note"].startswith("diverged")


@pytest.mark.parametrize("args, message", [
    (["--from", "{tmp}/nothing"], "no study there"),
    (["--top", "5"], "has only 4 finished trial(s)"),
    (["--fraction", "0"], "--fraction must be in (0, 1]"),
    (["--fraction", "1.5"], "--fraction must be in (0, 1]"),
    (["--top", "0"], "--top must be a whole number >= 1"),
    (["--to-model", "nobody/no-such-model"], "unknown model 'nobody/no-such-model'"),
    (["--to-model", "tiny:width=3"], "tiny models take integer options"),
    (["--set", "train.learning_rate"], "--set expects KEY=VALUE"),
])
def test_cli_bad_inputs_exit_2(proxy_study, tmp_path, capsys, args, message):
    base = {"--from": str(proxy_study), "--to-model": TARGET, "--out": str(tmp_path / "t")}
    flags = [a.replace("{tmp}", str(tmp_path)) for a in args]
    for key, value in base.items():
        if key not in flags:
            flags += [key, value]
    assert main(["-q", "transfer", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert not (tmp_path / "t" / "study.db").exists()  # nothing started
