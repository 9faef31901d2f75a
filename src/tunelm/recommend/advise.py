"""`recommend(Request(...))`: gather the facts (model, dataset, hardware), apply the rules in a
fixed order (rank, epochs, batch, learning rate, schedule, regularisation, evaluation), and
return a Recommendation whose `config()` `tunelm train` runs as it is."""

from __future__ import annotations

import math

from ..config import METHODS
from ..errors import ConfigError
from . import rules
from .advice import TASK_TYPES, Advice, Recommendation, Request
from .facts import model_facts
from .gather import DatasetFacts, dataset_facts, hardware, local_tokenizer
from .memory import estimate
from .sources import MIN_STEPS


def recommend(req: Request) -> Recommendation:
    """A complete starting config for `req`, every value with its reason and source."""
    if req.method not in METHODS:
        raise ConfigError(f"--method must be one of {', '.join(METHODS)}, got {req.method!r}")
    if req.task_type not in TASK_TYPES:
        raise ConfigError(f"--task-type must be one of {', '.join(TASK_TYPES)}, got "
                          f"{req.task_type!r}")
    facts = model_facts(req.model)
    hw = hardware(req)
    if req.method == "qlora" and not hw.on_gpu:
        raise ConfigError("--method qlora needs a CUDA GPU (bitsandbytes NF4); use --method lora "
                          "on a CPU, or pass --gpus N --gpu-memory GIB to plan for a GPU machine")
    data = dataset_facts(req, local_tokenizer(req.model))
    if req.effective_batch is not None and req.effective_batch < 1:
        raise ConfigError(f"--batch must be >= 1, got {req.effective_batch}")

    n = data.examples
    A: dict[str, Advice] = {
        "model.name": Advice(req.model, f"{facts.family} family, hidden size "
                             f"{facts.hidden_size}, {facts.num_layers} layers, "
                             f"{facts.params_b:.2f}B parameters", facts.source),
        "model.method": Advice(req.method, "as asked (--method)", "user"),
        "model.precision": Advice("auto", "bf16 on GPUs and CPUs that run it fast, fp32 "
                                  "otherwise (bf16 on an AVX2-only CPU runs ~17x slower)",
                                  "tunelm"),
    }
    lora = rules.lora(rules.rank(req.rank, req.task_type, n), req.alpha, req.use_rslora)
    r, alpha = lora["lora.r"].value, lora["lora.alpha"].value
    if req.method != "full":
        A.update(lora)
    epochs = rules.epochs(n)
    batch = rules.batch(facts, n, epochs.value, req.task_type, req.method, r, hw,
                        data.p95_tokens, req.effective_batch)
    lr, lr_notes = rules.learning_rate(facts, req.method, alpha, r, req.use_rslora, batch)
    A["train.learning_rate"] = lr
    A.update(rules.batch_advice(batch, hw.memory_gib))
    A["train.epochs"] = epochs
    notes = batch.notes + lr_notes
    steps = math.ceil(n / batch.effective) * epochs.value
    if steps < MIN_STEPS:
        notes.append(f"only {steps} optimizer steps: fewer than {MIN_STEPS}; more data helps "
                     "more than more epochs")
    A.update(rules.schedule(n))
    A.update(rules.regularisation(n, r, req.method, batch.gradient_checkpointing))
    A.update(rules.evaluation(steps))
    A.update(_data_advice(data, batch.max_length))

    mem = estimate(facts, micro_batch=batch.micro,
                   gradient_checkpointing=batch.gradient_checkpointing, **batch.memory_kw)
    space = rules.search_space(lr.value, facts, req.method, r)
    budget = rules.budget_sketch(facts, data, epochs.value, req.method, batch.devices, hw.on_gpu,
                                 req.throughput)
    return Recommendation(req, facts, data, A, space, mem, budget, notes)


def _data_advice(data: DatasetFacts, max_length: int) -> dict[str, Advice]:
    out = {}
    if data.task:
        out["data.task"] = Advice(data.task, "no data given: the built-in task", "tunelm")
        out["data.task_train_size"] = Advice(data.examples, "the demo's size, a CPU-sized run",
                                             "tunelm")
    else:
        out["data.train"] = Advice(data.path or "REPLACE_WITH_YOUR_DATA.jsonl", data.source,
                                   "user")
    out["data.max_length"] = Advice(max_length, f"95% of the examples fit ({data.p95_tokens} "
                                    "tokens, rounded up to a multiple of 64)",
                                    "dataset statistics")
    return out
