"""The report as one self-contained HTML file: inline CSS, the charts as inline SVG, a few lines of
script that sort the trial table. No CDN, no fetch: it opens offline and survives being mailed.

Why inline SVG from matplotlib rather than plotly: the same figures become the PNGs, and a report
of a few dozen trials stays around 100 KB, where inlining plotly.js alone costs about 4.5 MB; the
price is hover tooltips, which the sortable table (and each state's reason) makes up for.
"""

from __future__ import annotations

import datetime as _dt
import io
import re
from html import escape

from .. import __version__
from ..tasks.metrics import SHARES
from .charts import COLORS, Chart
from .data import ReportData, TrialRow

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1240px;
padding:0 20px 40px;color:#222}
h1{margin:24px 0 4px}h2{margin:28px 0 8px;font-size:1.2em}
.meta{color:#555;margin:0}.counts span{margin-right:14px}
.chart,.no-chart{margin:0 0 18px;padding:10px;border:1px solid #e3e3e3;border-radius:6px}
.chart svg{max-width:100%;height:auto;display:block}
figcaption{color:#555;font-size:.9em;margin-top:6px}
.note{color:#8a5a00;background:#fff7e0;padding:8px;border-radius:4px}
pre{background:#f6f8fa;padding:10px;border-radius:4px;overflow:auto;font-size:13px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #e3e3e3;padding:4px 6px;text-align:right;white-space:nowrap}
th{cursor:pointer;background:#fafafa;position:sticky;top:0}
th[data-dir=asc]::after{content:" \\25B2"}th[data-dir=desc]::after{content:" \\25BC"}
th.text,td.text{text-align:left;white-space:normal;min-width:11em}
.scroll{overflow-x:auto}
.state{font-weight:600}.reason{display:block;font-weight:400;color:#666;font-size:.9em}
tr.best{background:#eef6ff}
"""

# Click a column header to sort by it; blanks stay at the bottom either way.
SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var dir = th.dataset.dir === "asc" ? "desc" : "asc";
      table.querySelectorAll("th").forEach(function (h) { delete h.dataset.dir; });
      th.dataset.dir = dir;
      var key = function (row) {
        var v = row.cells[col].dataset.v;
        if (v === undefined) v = row.cells[col].textContent.trim();
        if (v === "") return null;
        var n = Number(v);
        return isNaN(n) ? v : n;
      };
      var body = table.tBodies[0];
      Array.prototype.slice.call(body.rows).sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === null) return y === null ? 0 : 1;
        if (y === null) return -1;
        var c = (typeof x === "number" && typeof y === "number") ? x - y
          : String(x).localeCompare(String(y));
        return dir === "asc" ? c : -c;
      }).forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def svg_of(chart: Chart) -> str:
    """The chart's figure as an inline <svg> element. Every figure names its parts figure_1,
    patch_1, ...: the ids (and the references to them) get the chart id as a prefix, so that the
    figures of one page never share an id."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # text as text: smaller, selectable
        chart.figure.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r'\bid="([^"]+)"', rf'id="{chart.id}-\1"', text)
    return re.sub(r'(url\(#|href="#)([^")]+)', rf"\g<1>{chart.id}-\2", text)


def _num(x, spec: str = ".4f") -> tuple[str, str]:
    """(text, sort key) of a number, blank when missing."""
    return ("–", "") if x is None else (format(x, spec), repr(float(x)))


def _cost(seconds) -> tuple[str, str]:
    if seconds is None:
        return "–", ""
    text = f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
    return text, repr(float(seconds))


def _param(value) -> tuple[str, str]:
    if isinstance(value, float):
        return f"{value:.4g}", repr(value)
    if value is None:
        return "–", ""
    return str(value), str(value) if not isinstance(value, int) else repr(value)


def _cell(text_and_key: tuple[str, str], cls: str = "") -> str:
    text, key = text_and_key
    cls_attr = f' class="{cls}"' if cls else ""
    return f'<td{cls_attr} data-v="{escape(key)}">{escape(text)}</td>'


def _row(r: TrialRow, params: list[str], best: int | None, score_format: str = ".1%") -> str:
    color = COLORS.get(r.state, "#222")
    reason = f'<span class="reason">{escape(r.reason)}</span>' if r.reason else ""
    cells = [
        _cell((str(r.number), str(r.number))),
        f'<td class="text" data-v="{escape(r.state)}"><span class="state" style="color:{color}">'
        f"{escape(r.state)}</span>{reason}</td>",
        _cell((r.tag, r.tag)),
        *[_cell(_param(r.params.get(p))) for p in params],
        _cell(_num(r.best_eval_loss)),
        _cell(_num(r.task_metric, score_format)),
        _cell(_cost(r.cost_seconds)),
        _cell(_num(r.relative_regret, ".1%")),
        f'<td class="text" data-v="{escape(r.verdict)}">{escape(r.verdict)}'
        + (f'<span class="reason">{escape(r.finding)}</span>' if r.finding else "") + "</td>",
    ]
    cls = ' class="best"' if r.number == best else ""
    return f"<tr{cls}>" + "".join(cells) + "</tr>"


_TEXT = ' class="text"'


def _table(data: ReportData) -> str:
    heads = ["trial", "state", "tag", *data.params, "best eval loss",
             data.task_score.replace("_", " "), "cost", "relative regret", "diagnosis"]
    text = {"state", "diagnosis"}
    best = data.best.number if data.best else None
    score_format = ".1%" if data.task_score in SHARES else ".4g"  # chrf, a function's scores
    body = "\n".join(_row(r, data.params, best, score_format) for r in data.rows)
    return ('<div class="scroll"><table class="sortable" id="trials"><thead><tr>'
            + "".join(f'<th{_TEXT if h in text else ""} title="sort by {escape(h)}">'
                      f"{escape(h)}</th>" for h in heads)
            + f"</tr></thead><tbody>\n{body}\n</tbody></table></div>")


def _chart(chart: Chart) -> str:
    head = f"<h2>{escape(chart.title)}</h2>"
    caption = f"<figcaption>{escape(chart.caption)}</figcaption>"
    if chart.figure is None:
        return (f'<figure class="no-chart" id="chart-{chart.id}">{head}'
                f'<p class="note">{escape(chart.note or "nothing to show")}</p>{caption}</figure>')
    return (f'<figure class="chart" id="chart-{chart.id}" data-chart="{chart.id}">{head}'
            f"{svg_of(chart)}{caption}</figure>")


def _best(data: ReportData) -> str:
    if data.best is None:
        return ('<p class="note">No trial has completed yet: there is no best configuration to '
                "train or export.</p>")
    b = data.best
    params = ", ".join(f"{k} = {_param(v)[0]}" for k, v in b.params.items())
    return (f"<p>Trial <b>{b.number}</b>: {escape(data.objective)} <b>{b.value:.4f}</b> "
            f"({escape(params)}).</p>"
            "<p>Train it, then export it for your trainer:</p>"
            f'<pre id="commands">{escape(chr(10).join(b.commands))}</pre>'
            "<details><summary>The full configuration (best.yaml)</summary>"
            f'<pre id="best-config">{escape(b.config_yaml)}</pre></details>')


def _explore(steps: dict) -> str:
    """{"train.learning_rate": "x1.2", ...} -> "learning_rate x1.2, ..."."""
    return ", ".join(f"{name.rsplit('.', 1)[-1]} {how}" for name, how in steps.items())


def _lineage(data: ReportData) -> str:
    """Population-based training: member x generation, each cell its learning rate, where its
    weights came from and its eval loss at the generation's end."""
    if not data.lineage:
        return ""
    gens = sorted({c.generation for c in data.lineage})
    members = sorted({c.member for c in data.lineage})
    at = {(c.member, c.generation): c for c in data.lineage}
    rows = []
    for m in members:
        cells = []
        for g in gens:
            c = at.get((m, g))
            if c is None:
                cells.append("<td></td>")
                continue
            lr = "" if c.learning_rate is None else f"lr {c.learning_rate:.2e}"
            came = ("" if c.parent is None or c.parent == m else
                    f" ← member {c.parent} ({_explore(c.explore) or 'copied'})")
            loss = "failed" if c.loss is None else f"{c.loss:.4f}"
            cls = ' class="exploit"' if came else ""
            cells.append(f'<td{cls} title="trial {c.trial}">{escape(lr + came)}<br>'
                         f"{escape(loss)}</td>")
        rows.append(f"<tr><td>member {m}</td>{''.join(cells)}</tr>")
    head = "".join(f"<th>generation {g}</th>" for g in gens)
    return ('<h2 id="pbt-lineage">PBT lineage</h2><p class="meta">Each cell: the learning rate '
            "of the generation, the member whose weights and optimizer state it copied (with "
            "the explore step), and its eval loss at the generation's end.</p>"
            f'<div class="scroll"><table id="lineage"><thead><tr><th>member</th>{head}</tr>'
            f"</thead><tbody>{''.join(rows)}</tbody></table></div>")


def render(data: ReportData, charts: list[Chart]) -> str:
    """The whole report page."""
    counts = "".join(f"<span>{escape(k)}: <b>{v}</b></span>" for k, v in data.counts.items() if v)
    when = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    title = f"tunelm report: {data.study_name}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><style>{CSS}</style></head>
<body>
<h1>Study {escape(data.study_name)}</h1>
<p class="meta">strategy {escape(data.strategy)} · objective {escape(data.objective)}
({escape(data.direction)}) · storage <code>{escape(data.storage)}</code></p>
<p class="meta counts">{counts or "no trials yet"}</p>
<h2 id="best">Best configuration</h2>
{_best(data)}
{"".join(_chart(c) for c in charts)}
{_lineage(data)}
<h2>Trials</h2>
<p class="meta">Click a column to sort. Relative regret is (value − best) / best.</p>
{_table(data)}
<p class="meta">Written by tunelm {__version__} on {escape(when)}.</p>
<script>{SCRIPT}</script>
</body></html>
"""
