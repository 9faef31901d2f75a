"""The report's charts as matplotlib figures, drawn from `ReportData` and nothing else.

One drawing serves both outputs: `html` embeds each figure as inline SVG, `png` saves it as PNG.
A chart with nothing to draw carries a note instead of a figure.
"""

from __future__ import annotations

from dataclasses import dataclass

from .data import ReportData

COLORS = {"complete": "#1f77b4", "pruned": "#ff7f0e", "diverged": "#d62728",
          "failed": "#7f7f7f", "running": "#2ca02c"}
MARKERS = {"complete": "o", "pruned": "s", "diverged": "X", "failed": "x", "running": "^"}
# the kind of run a point is (data.KINDS): colour and marker say its state, the fill its kind
KIND_STYLE = {"full": {}, "probe": {"facecolors": "none", "linewidths": 1.4},
              "generation": {"alpha": 0.45}}


@dataclass
class Chart:
    id: str  # also the PNG's file name
    title: str
    caption: str
    figure: object | None  # a matplotlib Figure, or None with a note
    note: str | None = None


def _figure(width: float = 7.5, height: float = 4.2):
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def _log_if_spread(ax, values, axis: str = "y") -> None:
    """A log scale when the values span more than a decade (diverged trials next to good ones)."""
    values = [v for v in values if v is not None]
    if values and min(values) > 0 and max(values) / min(values) > 10:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
        _plain_ticks(ax.yaxis if axis == "y" else ax.xaxis)


def _plain_ticks(axis) -> None:
    """3, 10, 30 rather than 3x10^0, 10^1, 3x10^1 on a log axis."""
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "1235" else ""))


def _state_legend(ax, states, extra=(), kinds=None) -> None:
    """One legend: a colour and marker per state, then (when the points are not all full runs)
    a fill per kind, labelled from `kinds` ({kind: label}), then `extra`."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=COLORS[s], marker=MARKERS[s], linestyle="", label=s)
               for s in ("complete", "pruned", "diverged", "failed", "running") if s in states]
    if kinds and set(kinds) != {"full"}:
        fills = {"full": {}, "probe": {"markerfacecolor": "none"}, "generation": {"alpha": 0.45}}
        handles += [Line2D([], [], color="#444444", marker="o", linestyle="", label=label,
                           **fills[kind]) for kind, label in kinds.items()]
    ax.legend(handles=handles + list(extra), fontsize="small", loc="best")


def _points(ax, points, x: str, y: str) -> None:
    """Scatter `points` (each with .state and .kind) one group per kind and state: the group's
    gid (`points-probe-complete`) names it in the SVG."""
    groups: dict[tuple, list] = {}
    for p in points:
        groups.setdefault((p.kind, p.state), []).append(p)
    for (kind, state), group in groups.items():
        ax.scatter([getattr(p, x) for p in group], [getattr(p, y) for p in group],
                   color=COLORS[state], marker=MARKERS[state], zorder=3,
                   gid=f"points-{kind}-{state}", **KIND_STYLE[kind])


def history(data: ReportData) -> Chart:
    title, caption = "Optimisation history", (
        f"The objective ({data.objective}, {data.direction}d) of every finished trial, in the "
        "order they ran; the line is the best complete trial so far." + _kinds_note(data))
    if not data.history:
        return Chart("history", title, caption, None, "no trial has finished yet")
    fig, ax = _figure()
    _points(ax, data.history, "number", "value")
    best = [(p.number, p.best_so_far) for p in data.history if p.best_so_far is not None]
    if best:
        ax.step(*zip(*best), where="post", color="black", linewidth=1.2, label="best so far")
    _log_if_spread(ax, [p.value for p in data.history])
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # trial numbers, not 0.5
    ax.set_xlabel("trial")
    ax.set_ylabel(data.objective)
    ax.grid(alpha=0.3)
    from matplotlib.lines import Line2D

    _state_legend(ax, {p.state for p in data.history},
                  [Line2D([], [], color="black", label="best so far")] if best else [],
                  kinds=data.kinds)
    return Chart("history", title, caption, fig)


def _kinds_note(data: ReportData) -> str:
    if "probe" not in data.kinds:
        return ""
    return (" Hollow markers are probes, which ran only a share of the planned steps (see the "
            "legend): their loss comes from a shorter run and is not a full run's.")


def curves(data: ReportData) -> Chart:
    title, caption = "Eval loss of every trial", (
        "Eval loss at each evaluation step. Pruned trials are dashed and end in a square, "
        "diverged ones end in a red cross; the best trial is drawn thick.")
    if not data.curves:
        return Chart("curves", title, caption, None, "no trial has reported an eval loss yet")
    fig, ax = _figure()
    best = data.best.number if data.best else None
    for c in data.curves:
        is_best = c.number == best
        ax.plot(c.steps, c.losses, color=COLORS[c.state], alpha=1.0 if is_best else 0.55,
                linewidth=2.6 if is_best else 1.0,
                linestyle="--" if c.state in ("pruned", "diverged") else "-",
                marker="o" if len(c.steps) == 1 else None, markersize=4)
        if c.state != "complete":
            ax.scatter(c.steps[-1], c.losses[-1], color=COLORS[c.state], marker=MARKERS[c.state],
                       s=50, zorder=3)
    _log_if_spread(ax, [v for c in data.curves for v in c.losses])
    ax.set_xlabel("step")
    ax.set_ylabel("eval loss")
    ax.grid(alpha=0.3)
    from matplotlib.lines import Line2D

    extra = [Line2D([], [], color=COLORS["complete"], linewidth=2.6, label=f"best (trial {best})")]
    _state_legend(ax, {c.state for c in data.curves}, extra if best is not None else [])
    return Chart("curves", title, caption, fig)


def learning_rate(data: ReportData) -> Chart:
    title, caption = "Best eval loss against learning rate", (
        "Each trial's best eval loss at its peak learning rate (log scale). Too high a rate "
        "diverges; too low learns slowly." + _kinds_note(data))
    if not data.lr_points:
        return Chart("learning_rate", title, caption, None,
                     "no trial has both a learning rate and an eval loss yet")
    fig, ax = _figure()
    _points(ax, data.lr_points, "learning_rate", "loss")
    ring = []
    if data.best:
        for p in data.lr_points:
            if p.number == data.best.number:
                ring = [ax.scatter(p.learning_rate, p.loss, s=220, facecolors="none",
                                   edgecolors="black", zorder=4, label=f"best (trial {p.number})")]
    ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    _log_if_spread(ax, [p.loss for p in data.lr_points])
    ax.set_xlabel("learning rate")
    ax.set_ylabel("best eval loss")
    ax.grid(alpha=0.3, which="both")
    _state_legend(ax, {p.state for p in data.lr_points}, ring, kinds=data.kinds)
    return Chart("learning_rate", title, caption, fig)


def _tick(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def parallel(data: ReportData) -> Chart:
    title, caption = "Parallel coordinates", (
        "One line per finished trial through its parameters and its objective (right). Complete "
        "trials are coloured by the objective (darker is better); pruned and diverged ones are "
        "grey and dashed.")
    if not data.parallel or not data.axes:
        return Chart("parallel", title, caption, None, "no trial has finished yet")
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    objective = data.axes[-1]
    fig, ax = _figure(width=max(6.0, 2.0 * len(data.axes)), height=4.2)
    norm = Normalize(objective.position(objective.low), objective.position(objective.high))
    cmap = colormaps["viridis" if data.direction == "minimize" else "viridis_r"]
    for number, state, values in sorted(data.parallel, key=lambda r: r[1] == "complete"):
        points = [(i, a.position(values[a.name])) for i, a in enumerate(data.axes)
                  if a.name in values]
        xs, ys = zip(*points)
        if state == "complete":
            ax.plot(xs, ys, color=cmap(norm(objective.position(values[objective.name]))),
                    linewidth=2.4 if data.best and number == data.best.number else 1.4)
        else:
            ax.plot(xs, ys, color="#b0b0b0", linestyle="--", linewidth=1.0)
    for i, a in enumerate(data.axes):
        ax.axvline(i, color="black", linewidth=0.8)
        labels = ([(a.position(c), _tick(c)) for c in a.choices] if a.choices else
                  [(0.0, _tick(a.low)), (1.0, _tick(a.high))])
        for y, text in labels:
            ax.annotate(text, (i, y), xytext=(4, 0), textcoords="offset points", fontsize=8,
                        va="center")
    ax.set_xticks(range(len(data.axes)),
                  [a.name + (" (log)" if a.log else "") for a in data.axes], fontsize=8)
    ax.set_yticks([])
    ax.set_xlim(-0.1, len(data.axes) - 0.6)
    ax.set_ylim(-0.05, 1.05)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    return Chart("parallel", title, caption, fig)


def importance(data: ReportData) -> Chart:
    imp = data.importance
    title = "Parameter importance"
    caption = (f"{imp.method}: how much each parameter decides whether a trial lands among the "
               "best, as a share of the total.")
    if not imp.values:
        return Chart("importance", title, caption, None, imp.note)
    names = list(imp.values)[::-1]  # the most important on top
    fig, ax = _figure(height=max(2.0, 0.6 * len(names) + 1.0))
    ax.barh(names, [imp.values[n] for n in names], color=COLORS["complete"])
    for y, n in enumerate(names):
        ax.annotate(f"{imp.values[n]:.0%}", (imp.values[n], y), xytext=(4, 0),
                    textcoords="offset points", va="center", fontsize=8)
    ax.set_xlim(0, max(1.0, 1.15 * max(imp.values.values())))
    ax.set_xlabel("importance")
    return Chart("importance", title, caption, fig)


def build(data: ReportData) -> list[Chart]:
    """Every chart of the report, in the order the report shows them."""
    return [history(data), curves(data), learning_rate(data), parallel(data), importance(data)]
