"""The report tells probes (short runs on a share of the steps) from full runs: the kind of every
point in its data, and both kinds drawn apart, with a legend, in the optimisation history and the
loss-against-learning-rate chart. A protocol study written without training: no model, seconds.
"""

from __future__ import annotations

import types
import xml.etree.ElementTree as ET
from pathlib import Path

from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from tunelm.config import from_dict
from tunelm.report import collect
from tunelm.report.charts import build
from tunelm.report.data import kind_labels, trial_kind
from tunelm.report.html import svg_of
from tunelm.report.png import write_pngs

from .conftest import arithmetic_rows, write_jsonl


def test_a_trials_kind_comes_from_its_fraction_and_its_pbt_attributes():
    def trial(**attrs):
        return create_trial(state=TrialState.COMPLETE, value=1.0, user_attrs=attrs)

    assert trial_kind(trial()) == ("full", 1.0)  # trials before fractions were recorded
    assert trial_kind(trial(fraction=1.0, tag="final")) == ("full", 1.0)
    assert trial_kind(trial(fraction=0.2, tag="lr")) == ("probe", 0.2)
    assert trial_kind(trial(fraction=0.25, pbt={"member": 0, "generation": 1})) == (
        "generation", 0.25)
    assert trial_kind(trial(fraction="garbage")) == ("full", 1.0)
    point = types.SimpleNamespace
    assert kind_labels([point(kind="probe", fraction=0.2), point(kind="full", fraction=1.0),
                        point(kind="probe", fraction=0.2)]) == {
        "full": "full run", "probe": "probe (20% of steps)"}
    assert kind_labels([point(kind="probe", fraction=0.5), point(kind="probe", fraction=0.2)]) == {
        "probe": "probe (20%, 50% of steps)"}
    assert kind_labels([]) == {}


# a protocol study as the strategy leaves it: three learning-rate probes on 20% of the steps,
# one on the rank, then the final full run; (rate, loss, fraction, tag)
PROTOCOL_TRIALS = [(1e-3, 2.4, 0.2, "lr"), (3e-3, 2.1, 0.2, "lr"), (1e-2, 2.6, 0.2, "lr"),
                   (3e-3, 2.0, 0.2, "rank"), (3e-3, 1.3, 1.0, "final")]


def protocol_study(root: Path) -> Path:
    """The finished protocol study above, written without training; returns its directory."""
    from tunelm.search import open_study

    train = write_jsonl(root / "data" / "train.jsonl", arithmetic_rows(8, 0))
    cfg = from_dict({"model": {"name": "tiny"}, "data": {"train": str(train)},
                     "search": {"strategy": "protocol"}})
    study, _ = open_study(cfg, root / "protocol")
    space = {"train.learning_rate": FloatDistribution(1e-5, 1.0, log=True)}
    for lr, loss, fraction, tag in PROTOCOL_TRIALS:
        params = {"train.learning_rate": lr}
        study.add_trial(create_trial(
            state=TrialState.COMPLETE, value=loss, params=params, distributions=space,
            intermediate_values={2: loss + 0.3, 4: loss},
            user_attrs={"fraction": fraction, "tag": tag, "params": params}))
    return root / "protocol"


def _points_in(svg: str, group: str) -> list[str]:
    """The style of every marker the SVG draws in the element with id `group`."""
    root = ET.fromstring(svg)
    found = [e for e in root.iter() if e.get("id") == group]
    assert len(found) == 1, f"{group} is not in the SVG"
    return [e.get("style", "") for e in found[0].iter("{http://www.w3.org/2000/svg}use")]


def test_probes_and_full_runs_are_drawn_apart(tmp_path):
    data = collect(protocol_study(tmp_path))
    kinds = ["probe"] * 4 + ["full"]
    assert [(p.number, p.kind) for p in data.history] == list(enumerate(kinds))
    assert [(p.number, p.kind) for p in data.lr_points] == list(enumerate(kinds))
    assert [p.fraction for p in data.lr_points] == [f for _, _, f, _ in PROTOCOL_TRIALS]
    assert data.kinds == {"full": "full run", "probe": "probe (20% of steps)"}

    charts = {c.id: c for c in build(data)}
    for name in ("history", "learning_rate"):
        chart = charts[name]
        assert "Hollow markers are probes" in chart.caption
        labels = [t.get_text() for t in chart.figure.axes[0].get_legend().get_texts()]
        assert {"probe (20% of steps)", "full run"} <= set(labels), labels
        svg = svg_of(chart)
        assert ">probe (20% of steps)<" in svg and ">full run<" in svg  # the legend, as text
        probes = _points_in(svg, f"{name}-points-probe-complete")
        full = _points_in(svg, f"{name}-points-full-complete")
        assert len(probes) == 4 and all("fill: none" in s for s in probes)  # hollow
        assert len(full) == 1 and "fill: none" not in full[0]  # filled
    written = write_pngs(list(charts.values()), tmp_path / "plots")
    assert {p.stem for p in written} >= {"history", "learning_rate"}
    for path in written:  # the same figures: the legends above are in the PNGs
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
