"""End-to-end trials on a tiny random-weight model, on CPU, in seconds."""

import json

import pytest
import torch

from tunelm.base_model import load_base_model
from tunelm.cli import main
from tunelm.data import Collator, prepare
from tunelm.errors import TrainingError
from tunelm.runner import run_trial

from .conftest import read_metrics


def test_trial_directory_explains_itself(tiny_config, tmp_path):
    cfg = tiny_config(eval={"metric": "json", "max_examples": 4, "max_new_tokens": 8})
    out = tmp_path / "run"
    result = run_trial(cfg, out, progress=False)
    for name in ("config.yaml", "metrics.jsonl", "result.json", "train.log", "best",
                 "predictions.jsonl"):
        assert (out / name).exists(), name
    on_disk = json.loads((out / "result.json").read_text())
    assert on_disk == json.loads(json.dumps(result))
    for key in ("best_eval_loss", "best_step", "final_eval_loss", "task_metrics", "stop_reason",
                "wall_seconds", "tokens_seen", "tokens_per_s", "peak_rss_mb"):
        assert result[key] is not None, key
    assert result["stop_reason"] == "completed" and result["final_step"] == 12
    assert result["task_metrics"]["metric"] == "json" and result["task_metrics"]["n"] == 4
    rows = read_metrics(out)
    train_rows = [r for r in rows if "train_loss" in r]
    eval_rows = [r for r in rows if "eval_loss" in r]
    assert [r["step"] for r in train_rows] == list(range(1, 13))
    assert [r["step"] for r in eval_rows] == [4, 8, 12]
    for key in ("epoch", "learning_rate", "grad_norm", "tokens_seen", "tokens_per_s"):
        assert train_rows[-1][key] is not None, key
    assert min(r["eval_loss"] for r in eval_rows) == pytest.approx(result["best_eval_loss"])
    assert "step 12 | loss" in (out / "train.log").read_text()
    # the resolved config in the directory runs again as it is
    from tunelm.config import load_config
    assert load_config(out / "config.yaml") == cfg


def _eval_loss(model, tokenizer, cfg, work_dir):
    data = prepare(tokenizer, cfg.data, work_dir)
    collate = Collator(tokenizer.pad_token_id)
    losses = []
    model.eval()
    with torch.no_grad():
        for i in range(0, len(data.eval), cfg.train.batch_size):
            batch = collate(data.eval[i:i + cfg.train.batch_size])
            losses.append(model(**batch).loss.item())
    return sum(losses) / len(losses)


def test_best_adapter_reloads_with_peft(tiny_config, tmp_path):
    from peft import PeftModel

    # A rate high enough that eval loss is not monotone: the best step is not the last one.
    cfg = tiny_config(train={"learning_rate": 0.05, "max_steps": 12, "eval_steps": 2,
                             "divergence_factor": 0})
    result = run_trial(cfg, tmp_path / "run", progress=False)
    base, tok, _ = load_base_model(cfg.model, "fp32", "cpu")
    model = PeftModel.from_pretrained(base, tmp_path / "run" / "best")
    loss = _eval_loss(model, tok, cfg, tmp_path)
    assert loss == pytest.approx(result["best_eval_loss"], rel=1e-4)


def test_early_stopping_keeps_the_best_checkpoint(tiny_config, tmp_path):
    # A threshold no evaluation can beat: patience 2 runs out at the third evaluation.
    cfg = tiny_config(train={"max_steps": 40, "eval_steps": 2, "early_stopping_patience": 2,
                             "early_stopping_threshold": 10.0})
    result = run_trial(cfg, tmp_path / "run", progress=False)
    assert result["stop_reason"] == "early_stopping"
    assert result["final_step"] == 6
    evals = [r for r in read_metrics(tmp_path / "run") if "eval_loss" in r]
    best = min(evals, key=lambda r: r["eval_loss"])
    assert result["best_step"] == best["step"]
    assert (tmp_path / "run" / "best" / "adapter_model.safetensors").exists()
    assert not (tmp_path / "run" / "best.tmp").exists()


def _lrs(tiny_config, tmp_path, **train):
    base = {"max_steps": 20, "eval_steps": 20, "warmup_ratio": 0.2, "learning_rate": 1e-3}
    cfg = tiny_config(train={**base, **train})
    run_trial(cfg, tmp_path / train["scheduler"], progress=False)
    rows = [r for r in read_metrics(tmp_path / train["scheduler"]) if "learning_rate" in r]
    return [r["learning_rate"] for r in rows]


def _diffs(xs):
    return [b - a for a, b in zip(xs, xs[1:])]


def test_schedule_shapes(tiny_config, tmp_path):
    peak = 1e-3
    lin = _lrs(tiny_config, tmp_path, scheduler="linear")
    # warmup: 4 steps rising linearly to the peak, then a straight line down to 0
    assert lin[:5] == pytest.approx([0, 0.25e-3, 0.5e-3, 0.75e-3, 1e-3])
    down = _diffs(lin[4:])
    assert all(d == pytest.approx(down[0]) for d in down) and down[0] < 0

    cos = _lrs(tiny_config, tmp_path, scheduler="cosine")
    assert max(cos) == pytest.approx(peak)
    dc = _diffs(cos[4:])
    assert all(d < 0 for d in dc)
    assert abs(dc[0]) < abs(dc[len(dc) // 2])  # cosine: slow, fast, slow

    flat = _lrs(tiny_config, tmp_path, scheduler="constant_with_warmup")
    assert flat[4:] == pytest.approx([peak] * 16)

    restarts = _lrs(tiny_config, tmp_path, scheduler="cosine_with_restarts", num_cycles=2)
    after = _diffs(restarts[4:])
    assert any(d > 0 for d in after), "a hard restart jumps back up"
    assert max(restarts[10:]) == pytest.approx(peak, rel=0.05)

    wsd = _lrs(tiny_config, tmp_path, scheduler="wsd", wsd_stable_end=0.6)
    # warmup to step 4, stable to step 12 (60% of 20), then decay towards 0
    assert wsd[4:12] == pytest.approx([peak] * 8)
    tail = wsd[12:]
    assert all(d < 0 for d in _diffs(tail)) and tail[-1] < 0.2 * peak


def test_batch_times_accumulation_gives_the_same_losses(tiny_config, tmp_path):
    curves = {}
    for bs, acc in ((8, 1), (4, 2), (2, 4)):
        cfg = tiny_config(train={"batch_size": bs, "grad_accum": acc, "max_steps": 6,
                                 "eval_steps": 6, "learning_rate": 1e-2})
        run_trial(cfg, tmp_path / f"b{bs}", progress=False)
        curves[bs] = [r["train_loss"] for r in read_metrics(tmp_path / f"b{bs}") if "train_loss" in r]
    assert len(curves[8]) == 6
    assert curves[4] == pytest.approx(curves[8], rel=2e-4)
    assert curves[2] == pytest.approx(curves[8], rel=2e-4)
    assert curves[8][-1] < curves[8][0]  # and it learns


def test_health_guard_stops_a_diverging_run(tiny_config, tmp_path):
    cfg = tiny_config(model={"method": "full"},
                      train={"learning_rate": 0.5, "scheduler": "constant_with_warmup",
                             "warmup_ratio": 0.0, "max_steps": 40, "eval_steps": 40,
                             "max_grad_norm": 0.0})
    with pytest.raises(TrainingError, match="learning rate") as err:
        run_trial(cfg, tmp_path / "run", progress=False)
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["status"] == "failed"
    assert result["final_step"] < 40
    assert result["stop_reason"].startswith(("diverged", "loss is", "grad_norm is"))
    assert err.value.result["stop_reason"] == result["stop_reason"]


def test_cli_train_runs_a_preset_with_overrides(small_data, tmp_path, capsys):
    out = tmp_path / "cli-run"
    code = main(["-q", "train", "presets/tiny.yaml", "--out", str(out),
                 "--set", f"data.train={small_data['train']}",
                 "--set", f"data.eval={small_data['eval']}",
                 "--set", "data.max_length=64", "--set", "train.max_steps=4",
                 "--set", "train.eval_steps=2"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "best eval loss" in printed and str(out) in printed
    assert json.loads((out / "result.json").read_text())["final_step"] == 4


def test_cli_train_exit_1_on_divergence(small_data, tmp_path, capsys):
    code = main(["-q", "train", "presets/tiny.yaml", "--out", str(tmp_path / "r"),
                 "--set", f"data.train={small_data['train']}", "--set", "data.max_length=64",
                 "--set", "model.method=full", "--set", "train.learning_rate=0.5",
                 "--set", "train.max_grad_norm=0", "--set", "train.warmup_ratio=0",
                 "--set", "train.max_steps=40", "--set", "train.scheduler=constant_with_warmup"])
    assert code == 1
    assert "try it 3-10x lower" in capsys.readouterr().err
