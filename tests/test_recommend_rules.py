"""recommend's rules one at a time: pure functions of the facts, constants from the sources
table, each value with its reason and source."""

import ast
import math
from pathlib import Path

import pytest

from tunelm.recommend import rules
from tunelm.recommend import sources as S
from tunelm.recommend.advice import Advice
from tunelm.recommend.facts import model_facts
from tunelm.recommend.gather import Hardware

RULES = Path(rules.__file__)
LABELS = {"tunelm memory model", "dataset statistics", "user"}  # sources that are not citations


def _numbers_outside(tree, skip: set[str]) -> list:
    """Numeric literals of a module other than 0, 1 and 2, outside the functions in `skip`."""
    found = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in skip:
            continue
        for sub in ast.walk(node):
            if (isinstance(sub, ast.Constant) and isinstance(sub.value, (int, float))
                    and not isinstance(sub.value, bool) and sub.value not in (0, 1, 2)):
                found.append((sub.lineno, sub.value))
    return found


def test_every_constant_of_the_rules_is_in_the_sources_table():
    # budget_sketch keeps its body until the search strategies own the protocol's cost
    tree = ast.parse(RULES.read_text(encoding="utf-8"))
    assert _numbers_outside(tree, {"budget_sketch"}) == []


def test_the_rules_read_no_file_and_no_device():
    tree = ast.parse(RULES.read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert imported <= {None, "__future__", "math", "dataclasses", "typing", "importlib", "sources",
                        "advice", "facts", "memory", "gather", "sharding", "search.space",
                        "search.strategies.protocol"}, imported
    calls = {n.func.id for n in ast.walk(tree)
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert not calls & {"open", "Path"}


def _check(advice: Advice):
    assert advice.reason and (advice.source in S.SOURCES or advice.source in LABELS), advice


@pytest.mark.parametrize("task, n, expected", [
    ("style", 500, S.RANK["format"]), ("classification", 50_000, S.RANK["format"]),
    ("code", 1_000, S.RANK["code"]), ("code", 10_000, S.RANK["code_large"]),
    ("instruction", 1_000, S.RANK["small"]), ("instruction", 10_000, S.RANK["large"]),
])
def test_rank_by_task_and_size(task, n, expected):
    advice = rules.rank(None, task, n)
    assert advice.value == expected
    _check(advice)
    assert rules.rank(24, task, n).value == 24


@pytest.mark.parametrize("n, epochs, warmup", [(500, 3, 0.1), (3_000, 2, 0.05),
                                               (20_000, 1, 0.03), (100_000, 1, 0.03)])
def test_epochs_and_warmup_by_dataset_size(n, epochs, warmup):
    assert rules.epochs(n).value == epochs
    advice = rules.schedule(n)
    assert advice["train.warmup_ratio"].value == warmup
    for a in [rules.epochs(n), *advice.values()]:
        _check(a)


def test_batch_keeps_the_effective_batch_and_the_rate_follows_the_square_root_rule():
    facts = model_facts("meta-llama/Llama-3.1-8B")
    one = rules.batch(facts, 3_000, 2, "instruction", "lora", 16, Hardware(1, 80.0, True), 400,
                      None)
    assert one.effective == one.reference == S.REF_BATCH["default"]
    assert one.micro * one.accum == one.effective
    eight = rules.batch(facts, 3_000, 2, "instruction", "lora", 16, Hardware(8, 80.0, True), 400,
                        128)
    assert eight.effective == 128 and "as asked (--batch)" in eight.reason
    lr1, _ = rules.learning_rate(facts, "lora", 32.0, 16, False, one)
    lr8, _ = rules.learning_rate(facts, "lora", 32.0, 16, False, eight)
    assert lr8.value == pytest.approx(lr1.value * math.sqrt(128 / 32), rel=0.01)
    assert "square-root rule" in lr8.reason and lr8.source == "tinker"
    for a in [lr1, *rules.batch_advice(one, 80.0).values()]:
        _check(a)


def test_a_batch_that_does_not_fit_says_so():
    facts = model_facts("meta-llama/Llama-3.1-70B")
    b = rules.batch(facts, 3_000, 2, "instruction", "full", 16, Hardware(1, 8.0, True), 400, None)
    assert b.micro == 1 and "does not fit" in b.notes[0]


def test_regularisation_and_evaluation_advice():
    q = rules.regularisation(500, 16, "qlora", True)
    assert q["train.max_grad_norm"].value == S.CLIP["qlora"]
    assert q["train.optimizer"].value == "paged_adamw_8bit"
    assert q["train.weight_decay"].value == S.WEIGHT_DECAY["overfit_prone"]
    plain = rules.regularisation(5_000, 16, "lora", False)
    assert plain["train.weight_decay"].value == S.WEIGHT_DECAY["default"]
    ev = rules.evaluation(240)
    assert ev["train.eval_steps"].value == 240 // S.EVALS_PER_RUN
    for a in [*q.values(), *plain.values(), *ev.values()]:
        _check(a)
