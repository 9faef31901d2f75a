"""Recommendations in the vocabulary of the tool that ran the training: tunelm config fields for
a tunelm trial, `TrainingArguments` names for a Trainer run (TRL, Axolotl and LLaMA-Factory use
the same names or close ones)."""

from __future__ import annotations

from .metrics import MetricsTable

KNOBS = {
    #  concept              tunelm field                      Trainer-side setting ({v}: value)
    "learning_rate": ("train.learning_rate", "learning_rate"),
    "warmup_ratio": ("train.warmup_ratio", "warmup_ratio"),
    "epochs": ("train.epochs", "num_train_epochs"),
    "max_steps": ("train.max_steps", "max_steps"),
    "max_grad_norm": ("train.max_grad_norm", "max_grad_norm"),
    "weight_decay": ("train.weight_decay", "weight_decay"),
    "dropout": ("lora.dropout", "LoraConfig(lora_dropout={v})"),
    "patience": ("train.early_stopping_patience",
                 "EarlyStoppingCallback(early_stopping_patience={v})"),
    "logging_steps": ("train.logging_steps", "logging_steps"),
}


def knob(table: MetricsTable, concept: str) -> str:
    """The name of a setting as the user would write it for this run."""
    tunelm, trainer = KNOBS[concept]
    return tunelm if table.kind == "tunelm" else trainer.replace("={v}", "")


def setting(table: MetricsTable, concept: str, value) -> str:
    """A setting with its value: 'train.max_steps 40' or 'max_steps=40'."""
    tunelm, trainer = KNOBS[concept]
    if table.kind == "tunelm":
        return f"{tunelm} {value}"
    return trainer.format(v=value) if "{v}" in trainer else f"{trainer}={value}"


def fmt_lr(x: float) -> str:
    """3e-4, 1.5e-5: the way people write learning rates (0.33 and 1 for large ones)."""
    if x >= 0.01:
        return f"{x:.2g}"
    mantissa, exp = f"{x:.1e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exp)}"


def lr_change(table: MetricsTable, factor: float, verb: str) -> str:
    """'lower learning_rate to about 1/3 (3e-4 -> 1e-4)' with the run's own rate when known."""
    name = knob(table, "learning_rate")
    share = f"{factor:g}x" if factor > 1 else f"{round(1 / factor)}x"
    if factor < 1 and round(1 / factor) == 3:
        share = "to about 1/3"
    lr = table.peak_lr
    if lr is None:
        return f"{verb} {name} {share}"
    return f"{verb} {name} {share} ({fmt_lr(lr)} -> {fmt_lr(lr * factor)})"


def warmup_advice(table: MetricsTable, target: float = 0.1) -> str | None:
    """'raise warmup_ratio to 0.1 (now 0.03)', or None when the warmup is already that long."""
    now = table.warmup_ratio
    if now is not None and now >= target:
        return None
    was = "" if now is None else f" (now {now:g})"
    return f"raise {knob(table, 'warmup_ratio')} to {target:g}{was}"


def longer_run(table: MetricsTable, factor: float = 2.0) -> str:
    """'raise train.epochs (1 -> 2)', or both epochs and max_steps for a Trainer run (its state
    records both, whichever the user set)."""
    h = table.hparams
    parts = []
    if h.get("epochs") and not (table.kind == "tunelm" and h.get("max_steps")):
        epochs = float(h["epochs"])
        parts.append(f"{knob(table, 'epochs')} ({epochs:g} -> {epochs * factor:g})")
    if h.get("max_steps"):
        steps = int(h["max_steps"])
        parts.append(f"{knob(table, 'max_steps')} ({steps} -> {round(steps * factor)})")
    if not parts:
        return (f"raise {knob(table, 'epochs')} or {knob(table, 'max_steps')} (about "
                f"{table.steps} -> {round(table.steps * factor)} steps)")
    return "raise " + " or ".join(parts) + (", whichever you set" if len(parts) > 1 else "")
