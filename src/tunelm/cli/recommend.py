"""`tunelm recommend`: a starting config with a reason and source per value (`recommend.recommend`)."""

from __future__ import annotations

import sys
from pathlib import Path

from ..config import METHODS
from ._common import command


def add(sub) -> None:
    p = command(
        sub, "recommend", "a starting config with the reason and source of every value",
        """
            tunelm recommend --model meta-llama/Llama-3.1-8B-Instruct --data train.jsonl --gpu-memory 80
            tunelm recommend --model Qwen/Qwen3-8B --examples 20000 --avg-tokens 600 --gpus 8
            tunelm recommend --model smollm2-135m --format yaml --out my.yaml && tunelm train my.yaml
            tunelm recommend --model ./my-model --data train.jsonl --alpha 64 --format json
        """,
    )
    p.add_argument("--model", required=True,
                   help="hub id (built-in table works offline), local directory, .gguf, smollm2-135m")
    p.add_argument("--data", help="training data (JSONL/CSV file or directory) to size the run from")
    p.add_argument("--examples", type=int, help="number of examples, when there is no --data yet")
    p.add_argument("--avg-tokens", type=float, help="average tokens per example, with --examples")
    p.add_argument("--method", default="lora", metavar="METHOD",
                   help=f"{' | '.join(METHODS)} (default lora)")
    p.add_argument("--gpus", type=int, help="GPUs (0: CPU; default: the ones this machine has)")
    p.add_argument("--gpu-memory", type=float, help="GiB per GPU (default: detected)")
    p.add_argument("--task-type", default="instruction",
                   help="instruction | classification | code | style (default instruction)")
    p.add_argument("--alpha", type=float, help="your LoRA alpha; the rate is rescaled by 32/alpha")
    p.add_argument("--rank", type=int, help="your LoRA rank")
    p.add_argument("--rslora", action="store_true", help="rank-stabilised scaling alpha/sqrt(r)")
    p.add_argument("--batch", type=int, help="your effective batch (square-root rule on the rate)")
    p.add_argument("--measure", action="store_true",
                   help="measure throughput with a few real steps for the budget")
    p.add_argument("--format", default="text", choices=["text", "yaml", "json"])
    p.add_argument("--out", help="write to this file instead of stdout")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..recommend import RENDERERS, Request, measure_throughput, recommend

    req = Request(
        model=args.model, data=args.data, examples=args.examples, avg_tokens=args.avg_tokens,
        method=args.method, gpus=args.gpus, gpu_memory=args.gpu_memory,
        task_type=args.task_type, alpha=args.alpha, rank=args.rank, use_rslora=args.rslora,
        effective_batch=args.batch,
    )
    rec = recommend(req)
    if args.measure:
        req.throughput = measure_throughput(rec.config())
        rec = recommend(req)
    text = RENDERERS[args.format](rec)
    if args.out:
        from ..files import write_text_atomic

        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out, text)
        print(f"written to {out}", file=sys.stderr)
    else:
        print(text, end="")
    return 0
