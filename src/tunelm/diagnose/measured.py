"""What the advice benchmark measured, quoted by every rate advice diagnose gives.

`benchmarks/advice_accuracy.py` replays diagnose on every recorded run of the grids in
benchmarks/data (each run labelled too low / near / too high against its grid's best rate) and
counts, per finding, how often the rate advice it gave pointed the right way. The table below is
its output (`--measured`); tests/test_diagnose.py checks that it still matches the benchmark.
"""

from __future__ import annotations

BENCHMARK = "benchmarks/advice_accuracy.py"
RUNS = 53
GRIDS = ('contracts', 'docstrings', 'licenses')
# finding code -> (runs where its rate advice pointed the right way, runs where it gave it)
RATE_ADVICE: dict[str, tuple[int, int]] = {'DIVERGED': (2, 2), 'EVAL_WORSE': (4, 4), 'GRAD_NORM_HIGH': (5, 5), 'NO_PROGRESS': (8, 8)}


def rate_advice_record(code: str) -> str:
    """'pointed the right way on 7 of 8 benchmark runs where EVAL_WORSE gave it', or that the
    benchmark has not seen this advice."""
    right, given = RATE_ADVICE.get(code, (0, 0))
    if not given:
        return (f"{code}'s rate advice was not given on any of the {RUNS} runs of the advice "
                f"benchmark ({BENCHMARK}), so its accuracy is not measured")
    return (f"on the advice benchmark ({RUNS} recorded runs, {BENCHMARK}) {code}'s rate advice "
            f"pointed the right way on {right} of the {given} runs where it was given")
