"""`--isolate`: one trial in a child process.

The worker keeps the Optuna trial (and its heartbeat); the child reopens the trial through the
study storage, so eval losses are reported and the pruner is asked exactly as in-process, runs
the training, and leaves its outcome in the trial directory. All the memory the trial used
(fragmented CUDA allocations, a leak in user code) goes back to the system when the child exits,
at the cost of loading the base model for every trial.

    python -m tunelm.search.isolate TRIAL_DIR/isolate-request.json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

from ..errors import BadInputError, Preempted, TrainingError
from .interrupt import forwarding as passing_ctrl_c
from .interrupt import handled

REQUEST, OUTCOME = "isolate-request.json", "isolate-outcome.json"


def run_isolated(cfg, out: Path, fraction: float, storage_url: str | None,
                 study_name: str | None, trial_id: int | None, run=None) -> dict:
    """Run a trial in a child process (on `train.devices` ranks, children of torchrun);
    `storage_url` None: no Optuna trial to report to. Returns the outcome the child wrote:
    {"status": "ok" | "diverged" | "oom" | "preempted" | "error" | "interrupted",
    "result": {...}, "pruned_at": step|None, "step": the step a preempted trial stopped at,
    "error": text}. SIGTERM and Ctrl-C to this process are passed on to the child: on SIGTERM it
    saves a checkpoint and stops, on Ctrl-C it records the interruption."""
    out.mkdir(parents=True, exist_ok=True)
    request = out / REQUEST
    request.write_text(json.dumps({
        "config": cfg.to_dict(), "out": str(out), "fraction": fraction,
        "storage": storage_url, "study": study_name, "trial_id": trial_id,
        "run": run.to_dict() if run is not None else None,  # the trial's name for the trackers
    }), encoding="utf-8")
    (out / OUTCOME).unlink(missing_ok=True)
    from ..runner.launch import rank_command
    from ..runner.preempt import forwarding

    # train.devices N > 1: N ranks under torchrun, each running _child (rank 0 writes the outcome)
    # a process group of its own: Ctrl-C reaches the worker, which passes it on once; so does
    # SIGTERM (a scheduler that signals the worker's process group no longer reaches the child)
    proc = subprocess.Popen(rank_command(cfg.train.devices, "tunelm.search.isolate",
                                         str(request)), env=os.environ.copy(), process_group=0)
    with forwarding(proc), passing_ctrl_c([proc]):  # the child records it, the trial is marked
        proc.wait()
    outcome_file = out / OUTCOME
    if not outcome_file.exists():  # killed, or crashed before it could say
        return {"status": "error", "result": {},
                "error": f"the trial's child process exited with code {proc.returncode} "
                         f"and left no outcome; see {out / 'train.log'}"}
    return json.loads(outcome_file.read_text(encoding="utf-8"))


def _child(request_path: str) -> int:
    from ..config import from_dict
    from ..files import write_text_atomic
    from ..runner import run_trial
    from ..runner.launch import SharedStop, bind_rank_device, in_ranks, rank, rank_config
    from ..runner.sharding import sharded_config
    from ..runner.tracking import RunInfo
    from .objective import OptunaReporter, is_oom

    bind_rank_device()  # a CUDA rank loads onto its own GPU
    req = json.loads(Path(request_path).read_text(encoding="utf-8"))
    out, cfg = Path(req["out"]), sharded_config(from_dict(req["config"]))  # fsdp: no generation
    callbacks, reporter = [], None
    if rank() == 0 and req.get("storage"):  # only rank 0 reports and asks the pruner
        reporter = OptunaReporter(_trial(req))
        callbacks.append(reporter)
    if in_ranks():
        callbacks.append(SharedStop())  # last: every rank takes rank 0's decision
    scratch = None
    if rank() > 0:  # only rank 0 writes the trial directory
        scratch = tempfile.TemporaryDirectory(prefix=f"tunelm-rank{rank()}-")
        out, cfg = Path(scratch.name), rank_config(cfg)
    outcome: dict = {"status": "ok", "result": {}, "pruned_at": None}
    try:
        run = RunInfo(**req["run"]) if req.get("run") and rank() == 0 else None
        outcome["result"] = run_trial(cfg, out, progress=False, callbacks=callbacks,
                                      fraction=req["fraction"], run=run, home=req["out"])
    except Preempted as exc:  # checkpoint saved: the parent hands the trial back
        outcome.update(status="preempted", error=str(exc), step=exc.step)
    except TrainingError as exc:
        outcome.update(status="diverged", result=exc.result or {}, error=str(exc))
    except BadInputError as exc:  # the data or config: the parent ends the study (exit 2)
        outcome.update(status="bad_input", error=str(exc))
    except KeyboardInterrupt:  # Ctrl-C, passed on by the parent: the parent marks the trial
        outcome.update(status="interrupted", error="interrupted by the user")
    except Exception as exc:  # noqa: BLE001 - the parent decides what a failure means
        outcome.update(status="oom" if is_oom(exc) else "error",
                       error="".join(traceback.format_exception_only(type(exc), exc)).strip())
    outcome["pruned_at"] = reporter.pruned_at if reporter else None
    if scratch is not None:
        scratch.cleanup()
        if outcome["status"] != "ok":  # rank 0 writes the outcome; this rank's cause goes here
            sys.stderr.write(f"rank {rank()}: {outcome['status']}: {outcome.get('error')}\n")
        return 0 if outcome["status"] == "ok" else 1
    write_text_atomic(out / OUTCOME, json.dumps(outcome, default=str))
    return 0


def _trial(req: dict):
    import optuna

    from .study import make_storage

    study = optuna.load_study(study_name=req["study"], storage=make_storage(req["storage"]))
    return optuna.trial.Trial(study, req["trial_id"])


if __name__ == "__main__":
    try:
        with handled():  # a second Ctrl-C quits at once
            code = _child(sys.argv[1])
    except KeyboardInterrupt:  # before the trial started: no outcome, the parent marks it
        code = 130
    sys.exit(code)
