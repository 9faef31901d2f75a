"""lr-find: the rules on synthetic curves (milliseconds), then the range test on the tiny model."""

import json
import math
import random

import numpy as np
import pytest
import torch

from tunelm.base_model import load_base_model
from tunelm.cli import main
from tunelm.errors import ConfigError, TrainingError
from tunelm.lr_find import (
    analyze,
    check_range,
    diverged,
    run_lr_find,
    schedule,
    smooth,
    steepest,
    valley,
)

# ----------------------------------------------------------------------------------------------
# The rules, on synthetic curves
# ----------------------------------------------------------------------------------------------


def test_schedule_is_exponential_from_min_to_max():
    lrs = schedule(1e-7, 1.0, 100)
    assert len(lrs) == 100
    assert lrs[0] == pytest.approx(1e-7) and lrs[-1] == pytest.approx(1.0)
    ratios = [b / a for a, b in zip(lrs, lrs[1:])]
    assert all(r == pytest.approx(10 ** (7 / 99)) for r in ratios)


def test_smoothing_is_a_bias_corrected_moving_average():
    assert smooth([2.0] * 50, 0.98) == pytest.approx([2.0] * 50)  # no pull towards 0
    # beta 0.5 by hand: avg 0.5 -> 0.5/0.5 = 1; avg 0.25 + 1.5 = 1.75 -> 1.75/0.75
    assert smooth([1.0, 3.0], 0.5) == pytest.approx([1.0, 1.75 / 0.75])
    noisy = [1 + random.Random(i).uniform(-0.5, 0.5) for i in range(200)]
    assert np.std(smooth(noisy, 0.98)[50:]) < np.std(noisy[50:]) / 3


def test_stop_rule_is_four_times_the_best_smoothed_loss():
    assert diverged(4.0, 1.0, 4.0) is None
    assert "exceeded 4x" in diverged(4.01, 1.0, 9.0)
    assert "not finite" in diverged(1.0, 1.0, float("nan"))
    assert "not finite" in diverged(1.0, 1.0, float("inf"))


def _sigmoid_curve(n=100, centre=1e-3):
    """Loss falling from 3 to 1 around `centre`, symmetric in log lr: steepest exactly there."""
    lrs = schedule(1e-7, 1.0, n)
    losses = [1 + 2 / (1 + math.exp(3 * math.log(lr / centre))) for lr in lrs]
    return lrs, losses


def test_steepest_finds_the_steepest_point_and_backs_off():
    lrs, losses = _sigmoid_curve(centre=1e-3)
    s = steepest(lrs, losses, backoff=3)
    step = 10 ** (7 / 99)
    assert 1e-3 / step <= s.point_lr <= 1e-3 * step  # within one step of the true centre
    assert s.lr == pytest.approx(s.point_lr / 3)
    assert "divided by 3" in s.how
    # the window is respected: with the centre outside it, the steepest point is at its edge
    s2 = steepest(lrs, losses, start=80, end=95)
    assert 80 <= s2.index < 95


def _fastai_valley(lrs, losses):
    """fastai's `valley` (fastai/callback/schedule.py), transcribed as published: the oracle."""
    n = len(losses)
    max_start, max_end = 0, 0
    lds = [1] * n
    for i in range(1, n):
        for j in range(0, i):
            if (losses[i] < losses[j]) and (lds[i] < lds[j] + 1):
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    idx = max_start + int(sections) + int(sections / 2)
    return idx


def test_valley_is_fastais_rule():
    rng = random.Random(0)
    for trial in range(300):
        n = rng.randint(3, 60)
        if trial % 2:  # smooth-ish curves with a valley, as a range test gives
            losses = [math.cos(i / n * 6) + rng.uniform(-0.3, 0.3) for i in range(n)]
        else:
            losses = [rng.random() for _ in range(n)]
        lrs = schedule(1e-6, 1.0, n)
        want = _fastai_valley(lrs, losses)
        got = valley(lrs, losses).index
        if want >= 0:
            assert got == want, (losses, want, got)
        else:  # fastai would read from the end of the curve; we clamp to the first point
            assert got == 0


def test_valley_by_hand():
    # flat, then 21 points strictly down (indices 10..30), then up: the longest decreasing
    # run is 22 long (one flat point, then the 21), so fastai's arithmetic gives start
    # 30 - 22 = 8, L = 22, index 8 + int(22/3) + int(22/6) = 8 + 7 + 3 = 18
    losses = [5.0] * 10 + [4.0 - 0.1 * k for k in range(21)] + [3.0 + k for k in range(10)]
    lrs = schedule(1e-6, 1.0, len(losses))
    v = valley(lrs, losses)
    assert v.index == 18 and v.lr == lrs[18]
    assert "22 points" in v.how
    # within a window the index is into the whole curve
    assert valley(lrs, losses, start=5, end=35).index == 5 + _fastai_valley(None, losses[5:35])


def _range_test(k: float, seed: int, n: int = 100):
    """A synthetic range test: the loss falls as the rates summed so far grow (k: how fast the
    model learns), blows up beyond 1e-2, and carries 15% multiplicative noise."""
    rng = np.random.default_rng(seed)
    lrs = np.array(schedule(1e-7, 1.0, n))
    clean = 0.05 + 2.0 * np.exp(-k * np.cumsum(lrs))
    clean += np.where(lrs > 1e-2, 2.5 * np.log(lrs / 1e-2) ** 2, 0)
    noisy = clean * np.exp(rng.normal(0, 0.15, n))
    return lrs.tolist(), noisy.tolist(), clean.tolist()


@pytest.mark.parametrize("k", [300.0, 1000.0, 3000.0])
def test_the_backoff_takes_back_the_smoothing_lag(k):
    """Why steepest / 3: on these curves the smoothed curve's steepest point lies 2-3.5x to the
    right of the clean curve's (the moving average lags), and /3 lands within 2x of it."""
    for seed in range(5):
        lrs, noisy, clean = _range_test(k, seed)
        result = analyze(lrs, noisy, planned_steps=100)
        stop = len(noisy)
        for i, s in enumerate(result.smoothed):
            if diverged(s, min(result.smoothed[: i + 1]), noisy[i]):
                stop = i + 1
                break
        result = analyze(lrs[:stop], noisy[:stop], planned_steps=100)
        truth = steepest(lrs, clean, 10, stop - 5, backoff=1).lr
        shift = result.steepest.point_lr / truth
        assert 1.5 <= shift <= 3.5, (seed, shift)
        assert 0.5 <= result.steepest.lr / truth <= 1.2, (seed, result.steepest.lr / truth)


def test_analyze_without_enough_points_says_why():
    lrs = schedule(1e-7, 1.0, 100)
    result = analyze(lrs[:12], [1.0] * 12, planned_steps=100)  # window 10..7: empty
    assert result.steepest is None and result.valley is None
    assert "too few" in result.note and "--min-lr" in result.note
    # a NaN ends the curve there, as fastai drops from the first NaN
    losses = [2.0 - i / 100 for i in range(40)] + [float("nan")] * 5
    result = analyze(lrs[:45], losses, planned_steps=100)
    assert len(result.losses) == 40 and result.window == (10, 35)
    assert result.steepest is not None


def test_check_range_names_the_flags():
    with pytest.raises(ConfigError, match="--min-lr"):
        check_range(1.0, 0.1, 100)
    with pytest.raises(ConfigError, match="--min-lr"):
        check_range(0.0, 0.1, 100)
    with pytest.raises(ConfigError, match="--steps must be an integer >= 10"):
        check_range(1e-7, 1.0, 9)
    with pytest.raises(ConfigError, match="--max-lr"):
        check_range(1e-7, float("nan"), 100)
    check_range(1e-7, 1.0, 10)


# ----------------------------------------------------------------------------------------------
# The range test on the tiny model
# ----------------------------------------------------------------------------------------------


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("method", ["lora", "full"])
def test_lr_find_leaves_the_model_as_it_was(tiny_config, tmp_path, method):
    cfg = tiny_config(model={"method": method})
    base, tok, _ = load_base_model(cfg.model, "fp32", "cpu")
    before = _snapshot(base)
    flags = {n: p.requires_grad for n, p in base.named_parameters()}
    modules = [n for n, _ in base.named_modules()]
    base.eval()
    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    torch.manual_seed(123)

    record = run_lr_find(cfg, tmp_path / "lr", loaded=(base, tok), steps=40, max_lr=1.0,
                         progress=False)

    # the global random state was not consumed (the test forks it)
    assert torch.equal(torch.rand(3), expected_draw)
    after = base.state_dict()
    assert set(after) == set(before)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed == [], changed
    assert [n for n, _ in base.named_modules()] == modules  # no LoRA layer left behind
    assert not hasattr(base, "peft_config")
    assert {n: p.requires_grad for n, p in base.named_parameters()} == flags
    assert all(p.grad is None for p in base.parameters())
    assert not base.training
    # and the test did train: the weights moved during it (the loss changed along the curve)
    losses = [p["loss"] for p in record["curve"]]
    assert max(losses) - min(losses) > 0.1
    assert record["method"] == method


def test_lr_find_turns_gradient_checkpointing_back_off(tiny_config, tmp_path):
    from tunelm.base_model import checkpointing_on as _checkpointing

    cfg = tiny_config(train={"gradient_checkpointing": True})
    base, tok, _ = load_base_model(cfg.model, "fp32", "cpu")
    before = _snapshot(base)
    assert not _checkpointing(base)
    run_lr_find(cfg, tmp_path / "lr", loaded=(base, tok), steps=12, progress=False)
    assert not _checkpointing(base)
    assert all(torch.equal(v, base.state_dict()[k]) for k, v in before.items())


def test_lr_find_writes_its_record_and_plot(tiny_config, tmp_path):
    cfg = tiny_config()
    record = run_lr_find(cfg, tmp_path / "lr", steps=30, min_lr=1e-6, max_lr=1.0,
                         progress=False)
    on_disk = json.loads((tmp_path / "lr" / "lr_find.json").read_text())
    assert on_disk == json.loads(json.dumps(record))
    assert (tmp_path / "lr" / "lr_find.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "step 30 | lr 1.000e+00" in (tmp_path / "lr" / "lr_find.log").read_text()
    curve = record["curve"]
    assert [p["step"] for p in curve] == list(range(1, record["steps_run"] + 1))
    assert curve[0]["lr"] == pytest.approx(1e-6)
    assert [p["smoothed"] for p in curve] == pytest.approx(
        smooth([p["loss"] for p in curve], record["beta"]))
    s, v = record["suggestions"]["steepest"], record["suggestions"]["valley"]
    assert record["suggested_lr"] == s["lr"] == pytest.approx(s["point_lr"] / 3)
    start, end = record["window"]
    assert (start, end) == (3, record["steps_run"] - 5)
    assert start <= s["index"] < end and start <= v["index"] < end
    assert s["point_lr"] == curve[s["index"]]["lr"] and v["lr"] == curve[v["index"]]["lr"]
    assert (record["diverged_at_lr"] is None) == (record["stop_reason"] == "schedule finished")


def test_lr_find_stops_when_the_loss_diverges(tiny_config, tmp_path):
    # rates far beyond anything sane, no clipping: the smoothed loss passes 4x its best
    cfg = tiny_config(train={"max_grad_norm": 0})
    record = run_lr_find(cfg, tmp_path / "lr", steps=100, min_lr=1e-4, max_lr=1e4,
                         progress=False)
    assert record["steps_run"] < 100
    assert "exceeded 4x" in record["stop_reason"] or "not finite" in record["stop_reason"]
    assert record["diverged_at_lr"] == record["curve"][-1]["lr"]
    last = [p for p in record["curve"] if p["smoothed"] is not None]
    if "exceeded" in record["stop_reason"]:
        assert last[-1]["smoothed"] > 4 * min(p["smoothed"] for p in last)


def test_lr_find_that_diverges_at_once_fails_with_a_reason(tiny_config, tmp_path):
    cfg = tiny_config(train={"max_grad_norm": 0})
    with pytest.raises(TrainingError, match="no suggestion.*too few"):
        run_lr_find(cfg, tmp_path / "lr", steps=10, min_lr=1e3, max_lr=1e6, progress=False)
    assert (tmp_path / "lr" / "lr_find.json").exists()  # the record explains it


# ----------------------------------------------------------------------------------------------
# The command
# ----------------------------------------------------------------------------------------------


def _config_file(tiny_config, tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(tiny_config().to_yaml())
    return path


def test_cli_lr_find(tiny_config, tmp_path, capsys):
    cfg = _config_file(tiny_config, tmp_path)
    code = main(["-q", "lr-find", str(cfg), "--steps", "20", "--min-lr", "1e-5",
                 "--out", str(tmp_path / "out")])
    assert code == 0
    shown = capsys.readouterr().out
    record = json.loads((tmp_path / "out" / "lr_find.json").read_text())
    assert f"{record['suggested_lr']:.2e}" in shown and "valley rule" in shown
    assert ("diverged at" in shown) == (record["diverged_at_lr"] is not None)
    assert record["steps"] == 20 and record["min_lr"] == 1e-5


@pytest.mark.parametrize("flags, message", [
    (["--min-lr", "1", "--max-lr", "0.1"], "--min-lr (1) must be below --max-lr (0.1)"),
    (["--steps", "5"], "--steps must be an integer >= 10"),
    (["--min-lr", "-1"], "--min-lr must be a number > 0"),
])
def test_cli_lr_find_bad_values_exit_2(tiny_config, tmp_path, capsys, flags, message):
    cfg = _config_file(tiny_config, tmp_path)
    assert main(["lr-find", str(cfg), *flags, "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_lr_find_diverging_at_once_exits_1(tiny_config, tmp_path, capsys):
    cfg = _config_file(tiny_config, tmp_path)
    code = main(["-q", "lr-find", str(cfg), "--set", "train.max_grad_norm=0", "--steps", "10",
                 "--min-lr", "1e3", "--max-lr", "1e6", "--out", str(tmp_path / "out")])
    assert code == 1
    assert "no suggestion" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# Calibration against the recorded grids (issue 13)
# ----------------------------------------------------------------------------------------------


def test_one_factor_is_applied_only_when_it_fits_every_measured_grid():
    from tunelm.lr_find import calibrate

    fits = calibrate(3e-4, {"a": (4.0, 13.0), "b": (2.0, 6.0)})
    assert fits.factor == pytest.approx(math.sqrt(4 * 6)) and fits.lr == pytest.approx(3e-4 * fits.factor)
    assert (fits.low, fits.high) == (pytest.approx(1.2e-3), pytest.approx(1.8e-3))
    apart = calibrate(3e-4, {"a": (4.0, 13.0), "b": (1.0, 3.0)})  # no factor in both bands
    assert apart.factor is None and apart.lr is None
    assert (apart.low, apart.high) == (pytest.approx(3e-4), pytest.approx(3.9e-3))
    assert "no single factor" in apart.how
    assert calibrate(3e-4, {}) is None


def test_the_printed_text_gives_the_range_or_the_calibrated_rate_and_whom_to_trust(tmp_path):
    from tunelm.lr_find import MEASURED_BAND_RATIOS, calibrate, render_text

    record = {"suggestions": {"steepest": {"lr": 3e-4, "how": "steepest / 3"},
                              "valley": {"lr": 3.2e-4, "how": "valley"}},
              "steps_run": 64, "steps": 80, "stop_reason": "diverged", "wall_seconds": 300.0,
              "diverged_at_lr": 6e-2}
    text = render_text(record, tmp_path)
    cal = calibrate(3e-4)
    if not MEASURED_BAND_RATIOS:
        assert text.startswith("suggested learning rate  3.00e-04")
    elif cal.factor:
        assert text.startswith(f"suggested learning rate  {cal.lr:.2e}  (calibrated")
    else:  # the measurement found no steady factor: a range, and no single number first
        high = min(cal.high, 6e-2)  # never above the rate the test diverged at
        assert text.startswith(f"learning-rate range      {cal.low:.2e} to {high:.2e}")
        assert "raw suggestion           3.00e-04" in text
    assert "diverged at              6.00e-02" in text and str(tmp_path / "lr_find.json") in text


def test_the_measured_ratios_are_what_the_benchmark_measures():
    import sys
    from pathlib import Path

    from tunelm.lr_find import MEASURED_BAND_RATIOS, RECOMMEND_IN_BAND

    root = Path(__file__).parents[1]
    sys.path.insert(0, str(root / "benchmarks"))
    import advice_accuracy

    rows = advice_accuracy.lr_find_ratios(sorted((root / "benchmarks" / "data").glob("grid-*.json")))
    measured = {k: tuple(round(x, 2) for x in r["suggestion"]["band_over_it"])
                for k, r in rows.items() if "suggestion" in r}
    assert {k: tuple(round(x, 2) for x in v) for k, v in MEASURED_BAND_RATIOS.items()} == measured
    assert RECOMMEND_IN_BAND == (sum(r["recommended_in_band"] for r in rows.values()), len(rows))
