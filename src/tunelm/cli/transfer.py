"""`tunelm transfer --from STUDY --to-model M`: the proxy study's best configs on a target model
(`transfer.run_transfer`)."""

from __future__ import annotations

from ._common import command


def add(sub) -> None:
    p = command(
        sub, "transfer", "verify the best configs of a proxy-model study on a target model",
        """
            tunelm transfer --from runs/proxy --to-model meta-llama/Llama-3.1-8B --top 3
            tunelm transfer --from runs/demo --to-model smollm2-135m --set model.method=full
            tunelm transfer --from runs/tiny --to-model tiny:hidden=128,layers=4 --fraction 0.5 \\
                --double-rank --out runs/tiny-big
            tunelm transfer --from postgresql://user:pw@host/db --study proxy --to-model ./my-model
        """,
    )
    p.add_argument("--from", dest="source", required=True, metavar="STUDY",
                   help="the proxy study: its directory, or a storage URL with --study")
    p.add_argument("--to-model", required=True, metavar="MODEL",
                   help="target model: hub id, local directory, .gguf, smollm2-135m, tiny:...")
    p.add_argument("--top", type=int, default=3,
                   help="transfer the K best finished configs of the proxy study (default 3)")
    p.add_argument("--fraction", type=float, default=0.2,
                   help="share of the planned steps each target run takes, in (0, 1] "
                        "(default 0.2)")
    p.add_argument("--double-rank", action="store_true", help="double the LoRA rank")
    p.add_argument("--study", help="the proxy study's name (with a storage URL)")
    p.add_argument("--out", help="the new study's directory (default: <STUDY>-to-<model>)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field of the target config, e.g. --set model.method=full "
                        "or --set data.train=big.jsonl (repeatable)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..transfer import run_transfer, table

    result = run_transfer(args.source, args.to_model, top=args.top, fraction=args.fraction,
                          out=args.out, double_rank=args.double_rank, study_name=args.study,
                          overrides=args.overrides, progress=not args.quiet)
    print(table(result))
    return 0
