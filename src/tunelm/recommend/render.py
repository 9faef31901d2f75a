"""Renderers of a Recommendation: a readable table, commented YAML that `tunelm train` runs as it
is, and JSON with the reasons and sources beside the values."""

from __future__ import annotations

import json
import textwrap

import yaml

from .advice import Recommendation, cite
from .sources import SOURCES


def _used_sources(rec: Recommendation) -> list[str]:
    keys = []
    for adv in rec.advice.values():
        for key in [adv.source, *(o["source"] for o in adv.others)]:
            if key in SOURCES and key not in keys:
                keys.append(key)
    return keys


def _value(v) -> str:
    return yaml.safe_dump(v, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def to_text(rec: Recommendation) -> str:
    m, d = rec.model, rec.dataset
    lines = [
        f"tunelm recommend: {m.name} ({m.family}, hidden {m.hidden_size}, {m.num_layers} layers, "
        f"{m.params_b:.2f}B params; facts from {m.source})",
        f"data: {d.examples} examples, {d.avg_tokens:.0f} tokens on average, p95 {d.p95_tokens} "
        f"({d.source})",
        "",
        f"{'field':<32} {'value':<18} reason [source]",
        f"{'-' * 32} {'-' * 18} {'-' * 40}",
    ]
    for key, adv in rec.advice.items():
        value = _value(adv.value)
        if len(value) > 18:
            lines.append(f"{key:<32} {value}")
            key, value = "", ""
        reason = textwrap.wrap(f"{adv.reason} [{adv.source}]", 80) or [""]
        lines.append(f"{key:<32} {value:<18} {reason[0]}")
        lines += [f"{'':<51} {more}" for more in reason[1:]]
        for other in adv.others:
            lines.append(f"{'':<32} {'vs ' + _value(other['value']):<18} "
                         f"{other.get('note', '')} [{other['source']}]")
    lines += ["", "search space around it:"]
    for key, spec in rec.search_space.items():
        if spec["type"] == "categorical":
            lines.append(f"  {key:<30} one of {spec['choices']}")
        else:
            scale = "log-uniform" if spec.get("log") else "uniform"
            lines.append(f"  {key:<30} {scale} {spec['low']:g} .. {spec['high']:g}")
    mem = rec.memory.as_dict()
    lines += ["", f"memory per device (estimate): {mem['total']:.2f} GiB = weights "
              f"{mem['weights']:.2f} + gradients and optimizer {mem['trainable_states']:.2f} + "
              f"activations {mem['activations']:.2f} + logits {mem['logits']:.2f} + overhead "
              f"{mem['overhead']:.2f}; {rec.memory.trainable_params:,} trainable parameters"]
    b = rec.budget
    lines += ["", f"budget: {b['tokens_per_run']:,} tokens per run at ~{b['tokens_per_s']:,.0f} "
              f"tokens/s ({b['throughput_source']}): {b['hours_per_run']:.2f} h per run; a search "
              f"({b['plan']}) ~{b['search_total_hours']:.2f} h"
              + (f", {b['search_gpu_hours']:.2f} GPU-hours" if b["search_gpu_hours"] else "")]
    if rec.notes:
        lines += ["", "notes:"]
        for n in rec.notes:
            lines += textwrap.wrap(n, 100, initial_indent="  - ", subsequent_indent="    ")
    lines += ["", "sources:"]
    for key in _used_sources(rec):
        lines += textwrap.wrap(f"{key}: {cite(key)}", 100, initial_indent="  ",
                               subsequent_indent="      ")
    return "\n".join(lines) + "\n"


def to_yaml(rec: Recommendation) -> str:
    """YAML that `tunelm train` runs unchanged, each value followed by its reason and source."""
    out = [f"# tunelm train THIS_FILE   (written by: tunelm recommend --model {rec.model.name})",
           f"# {rec.model.name}: {rec.model.family}, hidden {rec.model.hidden_size}, "
           f"{rec.model.params_b:.2f}B parameters; data: {rec.dataset.examples} examples"]
    out += [f"# NOTE: {n}" for n in rec.notes]
    out += ["# sources:"] + [f"#   {key}: {cite(key)}" for key in _used_sources(rec)]
    config = rec.config_dict()
    for section, values in config.items():
        out.append(f"{section}:")
        for name, value in values.items():
            key = f"{section}.{name}"
            adv = rec.advice.get(key)
            if name == "space":
                out.append("  space:")
                out += ["    " + line for line in yaml.safe_dump(value, sort_keys=False).splitlines()]
                continue
            line = f"  {name}: {_value(value)}"
            if adv:
                comment = f"{adv.reason} [{adv.source}]".replace("\n", " ")
                out.append(f"  # {comment}")
                for other in adv.others:
                    out.append(f"  # other source: {_value(other['value'])} "
                               f"{other.get('note', '')} [{other['source']}]")
            out.append(line)
    return "\n".join(out) + "\n"


def to_json(rec: Recommendation) -> str:
    return json.dumps(rec.as_dict(), indent=2, default=str) + "\n"


RENDERERS = {"text": to_text, "yaml": to_yaml, "json": to_json}
