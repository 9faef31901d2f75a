"""Task metrics by greedy generation on eval examples (batched, left-padded, KV-cached)."""

from __future__ import annotations

import contextlib
import logging

from ..data import Record, detect_format, prompt_text, to_messages, tools_of
from ..tasks import metrics as task_metrics

log = logging.getLogger(__name__)


def autocast(device: str, precision: str):
    import torch

    if precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(device_type=device, dtype=dtype)
    return contextlib.nullcontext()


def prompts_and_answers(tokenizer, records: list[Record], data_cfg, limit: int):
    """(prompt text, reference answer) pairs of chat/prompt-completion records; none for text."""
    pairs = []
    for rec in records[:limit]:
        fmt = data_cfg.format if data_cfg.format != "auto" else detect_format(rec, data_cfg)
        if fmt == "text":
            return []
        msgs = to_messages(rec, fmt, data_cfg)
        # Score the last assistant turn; later non-assistant turns are dropped.
        last = max(i for i, m in enumerate(msgs) if m["role"] == "assistant")
        msgs = msgs[: last + 1]
        pairs.append((prompt_text(tokenizer, msgs, tools=tools_of(rec)), msgs[-1]["content"]))
    return pairs


def length_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Indices of `lengths` in batches of at most `batch_size`, shortest first: prompts of like
    length share a batch, so left padding (computed, then thrown away) stays small."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def generate(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int,
             device: str, precision: str) -> list[str]:
    """Greedy completions of `prompts`, in their order: batched by prompt length, each batch
    ending when every sequence has produced EOS (`generate` stops there by itself)."""
    import torch

    was_training = model.training
    model.eval()
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    outputs: list[str] = [""] * len(prompts)
    where = model.device if hasattr(model, "device") else device
    lengths = [len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]]
    try:
        for batch in length_batches(lengths, batch_size):
            enc = tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True,
                            add_special_tokens=False)
            enc = {k: v.to(where) for k, v in enc.items()}
            with torch.no_grad(), autocast(device, precision):
                out = model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=tokenizer.eos_token_id,
                )
            new = out[:, enc["input_ids"].shape[1] :]
            for i, text in zip(batch, tokenizer.batch_decode(new, skip_special_tokens=True)):
                outputs[i] = text
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return outputs


def evaluate_task(model, tokenizer, records: list[Record], data_cfg, eval_cfg, device: str,
                  precision: str, forced_metric: str | None = None):
    """Returns (metrics dict, per-example rows). Empty when the metric is `none`."""
    if eval_cfg.max_examples == 0:
        return {}, []
    pairs = prompts_and_answers(tokenizer, records, data_cfg, eval_cfg.max_examples)
    golds = [a for _, a in pairs]
    metric = forced_metric or task_metrics.choose_metric(eval_cfg.metric, golds)
    if not pairs or metric == "none":
        return {}, []
    longest = max(len(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in golds)
    max_new = min(eval_cfg.max_new_tokens, int(longest * 1.25) + 8)
    preds = generate(model, tokenizer, [p for p, _ in pairs], max_new, eval_cfg.batch_size,
                     device, precision)
    scores = task_metrics.score(metric, preds, golds, eval_cfg.metric_path)
    scores["metric"] = metric
    rows = [{"prompt": p, "reference": g, "prediction": o} for (p, g), o in zip(pairs, preds)]
    return scores, rows
