"""The replay's output: every strategy x 50 seeds on each recorded grid, summarised as one table
(regret at fixed shares of the grid's compute, and the compute needed to get within 1% / 1 point)
and one plot (median regret against compute, one panel per task). Summaries are plain data first
(`summarize`), rendered second (`table_markdown`, `plot`)."""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from pathlib import Path

from _replay import STRATEGIES, Grid, Trace, replay

FRACTIONS = (0.05, 0.10, 0.15, 0.25, 0.50, 1.00)
THRESHOLD = 1.0  # 1% relative regret (eval loss) or 1 exact-match point
DEFAULT = "tpe"  # the search.strategy default when these grids were replayed (pruner hyperband); adaptive since: benchmarks/small_budget.py


def _median(xs) -> float:
    return statistics.median(xs) if xs else math.inf


def summarize(grid: Grid, traces: list[Trace]) -> dict:
    """Per-strategy figures over seeds (regret in % for relative, in points for exact match)."""
    first = [t.first_within(THRESHOLD) for t in traces]
    return {
        "seeds": len(traces),
        "median_regret": {f"{f:.2f}": _median([t.regret_at(f) for t in traces])
                          for f in FRACTIONS},
        "share_within": {f"{f:.2f}": sum(t.regret_at(f) <= THRESHOLD for t in traces)
                         / len(traces) for f in FRACTIONS},
        "median_compute_to_within": _median(first),
        "share_reaching": sum(math.isfinite(x) for x in first) / len(traces),
        # a harder bar: the grid's best configuration itself (regret 0)
        "median_compute_to_best": _median([t.first_within(0.0) for t in traces]),
        "mean_trials": statistics.mean(t.trials for t in traces),
        "mean_pruned": statistics.mean(t.pruned for t in traces),
        "mean_repeats": statistics.mean(t.repeats for t in traces),
        "mean_compute_used": statistics.mean(t.costs[-1] if t.costs else 0.0 for t in traces),
    }


def target(summary: dict, strategy: str = DEFAULT) -> dict:
    """The issue's target for one strategy on one task: within 1% (1 point) with at most 15% of
    the grid's compute (median over seeds), and at most half of default TPE's compute."""
    ours = summary[strategy]["median_compute_to_within"]
    tpe = summary["default-tpe"]["median_compute_to_within"]
    return {"strategy": strategy, "compute_to_within": ours, "default_tpe_compute": tpe,
            "within_15pct": ours <= 0.15,
            "at_most_half_of_default_tpe": ours <= 0.5 * tpe,
            "met": ours <= 0.15 and ours <= 0.5 * tpe}


def _fmt(x: float, unit: str) -> str:
    if not math.isfinite(x):
        return "none yet"
    return f"{x:.2f}%" if unit == "relative" else f"{x:.1f} pt"


def _pct(x: float) -> str:
    return "never" if not math.isfinite(x) else f"{100 * x:.1f}%"


def table_markdown(results: dict) -> str:
    """One markdown table per task, the rows strategies (and for the demo task a second one in
    relative regret of eval loss, the quantity the strategies select on)."""
    blocks = []
    for task, res in results.items():
        blocks.append((task, res))
        if "strategies_eval_loss" in res:
            blocks.append((f"{task}, by eval loss",
                           {**res, "unit": "relative", "strategies": res["strategies_eval_loss"]}))
    out = []
    for task, res in blocks:
        unit, summary = res["unit"], res["strategies"]
        what = ("relative regret in best eval loss" if unit == "relative"
                else "regret in exact-match points")
        out.append(f"**{task}** ({what}; median over {res['seeds']} seeds, and in brackets the "
                   f"share of seeds within {'1%' if unit == 'relative' else '1 point'}):\n")
        head = " | ".join(f"{int(100 * f)}%" for f in FRACTIONS)
        out.append(f"| strategy | {head} | compute to within (median) | seeds reaching | "
                   "compute to the grid's best (median) | trials (pruned) |")
        out.append("|---" * (len(FRACTIONS) + 5) + "|")
        for name, s in summary.items():
            cells = " | ".join(f"{_fmt(s['median_regret'][f'{f:.2f}'], unit)} "
                               f"({100 * s['share_within'][f'{f:.2f}']:.0f}%)" for f in FRACTIONS)
            out.append(f"| {name} | {cells} | {_pct(s['median_compute_to_within'])} | "
                       f"{100 * s['share_reaching']:.0f}% | "
                       f"{_pct(s['median_compute_to_best'])} | {s['mean_trials']:.1f} "
                       f"({s['mean_pruned']:.1f}) |")
        out.append("")
    return "\n".join(out)


def plot(results: dict, traces: dict, path: Path) -> Path:
    """Median regret against compute fraction, one line per strategy, one panel per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [i / 400 for i in range(1, 401)]
    fig, axes = plt.subplots(1, len(results), figsize=(6.5 * len(results), 4.6), squeeze=False)
    for ax, (task, res) in zip(axes[0], results.items()):
        for i, name in enumerate(res["strategies"]):
            ys = [_median([t.regret_at(x) for t in traces[task][name]]) for x in xs]
            ys = [y if math.isfinite(y) else float("nan") for y in ys]
            ax.step(xs, ys, where="post", label=name, ls=("-", "--", "-.", ":")[i % 4],
                    lw=2.4 if name in (DEFAULT, "protocol") else 1.3)
        ax.axhline(THRESHOLD, color="grey", ls=":", lw=1)
        ax.axvline(0.15, color="grey", ls="--", lw=1)
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=1.0)
        ax.set_xlim(0.01, 1.0)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("compute spent (fraction of the whole grid's)")
        ax.set_ylabel("median regret, %" if res["unit"] == "relative"
                      else "median regret, exact-match points")
        ax.set_title(f"{task}: {len(traces[task][name])} seeds per strategy")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def replay_all(grids: dict, seeds: int, strategies=STRATEGIES) -> tuple[dict, dict]:
    """(results: per task the unit, seeds, strategy summaries and the target check;
    traces: per task and strategy the list of traces)."""
    results, traces = {}, {}
    for task, grid in grids.items():
        traces[task] = {name: [replay(grid, name, s) for s in range(seeds)]
                        for name in strategies}
        summary = {name: summarize(grid, ts) for name, ts in traces[task].items()}
        results[task] = {
            "unit": grid.unit, "seeds": seeds, "grid_seconds": round(grid.total_seconds, 1),
            "grid_best": _grid_best(grid), "strategies": summary,
            "target": {name: target(summary, name) for name in (DEFAULT, "protocol")
                       if name in summary and "default-tpe" in summary},
        }
        if grid.unit == "points":  # also in the unit the strategies select on: eval loss
            by_loss = dataclasses.replace(grid, unit="relative")
            results[task]["strategies_eval_loss"] = {
                name: summarize(by_loss, [t.rescored(by_loss) for t in ts])
                for name, ts in traces[task].items()}
    return results, traces


def _grid_best(grid: Grid) -> dict:
    usable = [r for r in grid.runs.values() if not r.diverged and r.best_eval_loss is not None]
    by_loss = min(usable, key=lambda r: r.best_eval_loss)
    out = {"best_eval_loss": by_loss.best_eval_loss, "params": by_loss.params}
    if grid.unit == "points":
        by_em = max(grid.runs.values(), key=lambda r: r.exact_match or 0.0)
        out.update({"best_exact_match": by_em.exact_match, "best_em_params": by_em.params,
                    "exact_match_of_best_loss": by_loss.exact_match})
    return out


def _jsonable(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_jsonable(v) for v in x]
    return x


def replay_main(tasks, seeds: int, paths, out_dir: Path) -> int:
    import sys

    grids = {}
    for task, path in zip(tasks, paths):
        if not Path(path).exists():
            print(f"no recording at {path}: record it first with "
                  f".venv/bin/python benchmarks/search_efficiency.py --tasks {task}",
                  file=sys.stderr)
            return 2
        try:
            grids[task] = Grid.from_record(json.loads(Path(path).read_text()))
        except ValueError as exc:
            print(str(exc), file=sys.stderr)
            return 2
    results, traces = replay_all(grids, seeds)
    table = table_markdown(results)
    png = plot(results, traces, Path(out_dir) / "search_efficiency.png")
    (Path(out_dir) / "search_efficiency.json").write_text(
        json.dumps(_jsonable(results), indent=1) + "\n")
    (Path(out_dir) / "search_efficiency.md").write_text(table + "\n")
    print(table)
    for task, res in results.items():
        for name, t in res["target"].items():
            print(f"{task}: {name} within {THRESHOLD:g}{'%' if res['unit'] == 'relative' else ' pt'}"
                  f" at {_pct(t['compute_to_within'])} of the grid's compute (default TPE: "
                  f"{_pct(t['default_tpe_compute'])}): target {'met' if t['met'] else 'NOT met'}")
    print(f"plot: {png}")
    return 0
