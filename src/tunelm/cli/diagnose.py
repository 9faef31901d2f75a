"""`tunelm diagnose PATH`: verdict and findings for a run (`diagnose.diagnose`)."""

from __future__ import annotations

from ._common import command


def add(sub) -> None:
    p = command(
        sub, "diagnose", "verdict and findings for a run: tunelm's, or any Trainer's trainer_state.json",
        """
            tunelm diagnose runs/tiny                      # a tunelm trial directory
            tunelm diagnose runs/contracts/trials/0003 --format json
            tunelm diagnose outputs/checkpoint-500         # a Trainer checkpoint (TRL, Axolotl, ...)
            tunelm diagnose outputs/                       # its latest checkpoint-N
            tunelm diagnose outputs/trainer_state.json
        """,
    )
    p.add_argument("path", metavar="PATH",
                   help="trial directory, Trainer output or checkpoint directory, "
                        "trainer_state.json or metrics.jsonl")
    p.add_argument("--format", default="text", choices=["text", "json"])
    p.set_defaults(func=run)


def run(args) -> int:
    from ..diagnose import RENDERERS, diagnose

    print(RENDERERS[args.format](diagnose(args.path)), end="")
    return 0  # a verdict, whatever it is, is a successful report
