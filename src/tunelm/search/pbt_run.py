"""Population-based training on Optuna's storage: each member-generation is one queued trial.

The coordinator (`tunelm search --strategy pbt`) asks `PBT` for a generation, enqueues one trial
per member (user attributes: `pbt` = member, generation, parent, parent's checkpoint, step
window, explore step; `fixed` = its values), runs queued trials itself and waits until every
trial of the generation is finished, by whichever worker: `tunelm worker` processes on other
machines run the same queued trials and, in a pbt study, never sample new ones.

A member-generation trial trains the steps `[start, end)` of the whole run: the configured
schedule (cosine by default) is laid over all generations x steps, so a member that continues
or copies another one resumes the schedule at its step with its own peak learning rate, instead
of restarting a warmup and a decay every generation. At the end of its window the trial's
training state (adapter or weights, optimizer, scheduler, trainer state) is packed into a tar
file and uploaded to Optuna's artifact store: `FileSystemArtifactStore(<study dir>/artifacts)`,
a directory every worker must see (a shared mount when workers run on other machines). Its
artifact id is the trial's `pbt_checkpoint` attribute; the next generation downloads it. Once a
generation has finished, the checkpoints of the generations before it are deleted: the store holds
at most two generations' states, and the last generation's at the end.
"""

from __future__ import annotations

import logging
import shutil
import tarfile
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState
from transformers import TrainerCallback

from ..config import Config
from ..errors import SearchError
from ..runner import run_trial
from .budget import NOT_RUN_ATTR, interrupted
from .dimensions import config_values
from .loop import OverBudget
from .objective import TrialObjective
from .pbt import CHECKPOINT_ATTR, PBT, PBT_ATTR, MemberResult, MemberStep
from .space import apply

log = logging.getLogger("tunelm.search")
STORE_ATTR = "pbt_artifacts"  # study attribute: the artifact store's directory
DONE_ATTR = "pbt_done"  # study attribute: the coordinator has finished; workers leave


def total_steps(cfg: Config) -> int:
    return cfg.search.pbt_generations * cfg.search.pbt_generation_steps


def artifact_store(study: optuna.Study, study_dir: Path):
    from optuna.artifacts import FileSystemArtifactStore

    path = Path(study.user_attrs.get(STORE_ATTR) or Path(study_dir) / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(path)


class StopAt(TrainerCallback):
    """Ends training at the last step of the generation's window."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kw):
        if state.global_step >= self.step:
            control.should_training_stop = True


class PBTObjective(TrialObjective):
    """Runs member-generation trials: from the parent's checkpoint, to the window's end, and
    uploads the training state it ends with."""

    def _run(self, trial, cfg: Config, out: Path, fraction: float, reporter, run=None):
        info = trial.user_attrs[PBT_ATTR]
        tracked = {"run": run} if run is not None else {}  # the trial's tracker run, if any
        # the whole run's plan (schedule, warmup, eval cadence) in every generation; the window
        # ends at StopAt. Early stopping would cut a window short: the generation decides.
        cfg = apply(cfg, {"train.max_steps": total_steps(cfg),
                          "train.early_stopping_patience": None})
        store = artifact_store(trial.study, self.study_dir)
        work = out / "pbt"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        resume = None
        if info.get("checkpoint"):
            resume = _download(store, info["checkpoint"], work / "start")
        try:
            result = run_trial(cfg, out, loaded=self._model(cfg), progress=self.progress,
                               callbacks=[reporter, StopAt(info["end_step"]),
                                          *self.extra_callbacks],
                               resume_from=resume, save_state_to=work / "end", **tracked)
            if (work / "end").exists():
                trial.set_user_attr(CHECKPOINT_ATTR, _upload(store, work / "end", trial))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return result, reporter.pruned_at


def _upload(store, state_dir: Path, trial) -> str:
    from optuna.artifacts import upload_artifact

    tar = state_dir.with_suffix(".tar")
    with tarfile.open(tar, "w") as fh:
        fh.add(state_dir, arcname=".")
    return upload_artifact(artifact_store=store, file_path=str(tar), study_or_trial=trial)


def _download(store, artifact_id: str, target: Path) -> Path:
    from optuna.artifacts import download_artifact

    tar = target.with_suffix(".tar")
    download_artifact(artifact_store=store, file_path=str(tar), artifact_id=artifact_id)
    with tarfile.open(tar) as fh:
        fh.extractall(target, filter="data")
    tar.unlink()
    return target


class EnqueuedOnly:
    """Wraps the objective: a pbt study runs only queued member-generations. A trial Optuna
    sampled because another worker took the last queued one first is closed unrun."""

    def __init__(self, objective):
        self.objective = objective

    def __call__(self, trial: optuna.Trial) -> float:
        if PBT_ATTR not in trial.user_attrs:
            trial.set_user_attr(NOT_RUN_ATTR, "no queued member-generation was left")
            raise OverBudget(f"trial {trial.number} not run: pbt runs queued trials only")
        return self.objective(trial)


def collect(study: optuna.Study) -> tuple[list[MemberResult], set, set]:
    """(finished member-generations, keys still queued or running, every key in the study).

    A trial failed by a stale heartbeat and retried counts through its retry; a key with a
    complete trial takes that one; an interrupted trial is as if it had not run (its
    member-generation is queued again)."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.system_attrs.get("failed_trial") for t in trials} - {None}
    finished: dict[tuple, MemberResult] = {}
    pending, known = set(), set()
    for t in sorted(trials, key=lambda t: t.number):
        info = t.user_attrs.get(PBT_ATTR)
        if not info or interrupted(t):
            continue
        key = (info["member"], info["generation"])
        known.add(key)
        if t.state in (TrialState.WAITING, TrialState.RUNNING):
            pending.add(key)
            continue
        if t.state == TrialState.FAIL and t.number in retried:
            continue
        ok = t.state == TrialState.COMPLETE
        if key in finished and finished[key].loss is not None and not ok:
            continue
        loss = t.user_attrs.get("final_eval_loss") if ok else None
        finished[key] = MemberResult(
            info["member"], info["generation"], t.user_attrs.get("params", t.params),
            float(loss) if loss is not None else None,
            t.user_attrs.get(CHECKPOINT_ATTR) if ok else None, info.get("parent"))
    pending -= set(finished)
    return list(finished.values()), pending, known


def strategy_of(cfg: Config, dims) -> PBT:
    s = cfg.search
    start = config_values(cfg, dims)
    return PBT(dims, start, s.pbt_population, s.pbt_generations, s.pbt_quantile,
               s.pbt_resample_probability, s.seed)


def attrs_of(step: MemberStep, cfg: Config) -> dict:
    """The user attributes of a member-generation's trial."""
    g, steps = step.generation, cfg.search.pbt_generation_steps
    return {"fixed": step.params, "tag": f"pbt g{g}",
            "fraction": 1 / cfg.search.pbt_generations,
            PBT_ATTR: {"member": step.member, "generation": g, "parent": step.parent,
                       "checkpoint": step.checkpoint, "explore": step.explore,
                       "start_step": g * steps, "end_step": (g + 1) * steps}}


def drop_checkpoints(study: optuna.Study, store, results: list[MemberResult]) -> None:
    """Delete the checkpoints no trial can start from any more: those of every generation before
    the last finished one (its own are the next generation's starts, or the final states). A
    checkpoint is an adapter and twice its size of optimizer state; a population keeps one each.
    """
    from optuna.artifacts.exceptions import ArtifactNotFound

    last = max(r.generation for r in results)
    for r in results:
        if r.generation < last and r.checkpoint:
            try:
                store.remove(r.checkpoint)
            except ArtifactNotFound:  # deleted before this coordinator was restarted
                pass


def run_pbt(study: optuna.Study, cfg: Config, runner, callbacks, stop, dims, study_dir: Path,
            worker: bool = False, poll: float | None = None) -> None:
    """The coordinator (or, with `worker`, a worker that runs queued member-generations until
    the coordinator is done). Waiting processes look for queued trials every `poll` seconds
    (the study's `search.pbt_poll_seconds` by default)."""
    if poll is None:
        poll = float(cfg.search.pbt_poll_seconds)
    if not worker:
        if STORE_ATTR not in study.user_attrs:
            study.set_user_attr(STORE_ATTR, str((Path(study_dir) / "artifacts").resolve()))
        study.set_user_attr(DONE_ATTR, False)
        store = artifact_store(study, study_dir)
    pbt = strategy_of(cfg, dims)
    objective = EnqueuedOnly(runner)
    while not stop.check(study) and runner.fatal is None:
        if not worker:
            results, pending, known = collect(study)
            todo = pbt.propose(results)
            if todo is None:
                drop_checkpoints(study, store, results)
                break
            new = [s for s in todo if (s.member, s.generation) not in known]
            if new and new[0].generation > 0:
                drop_checkpoints(study, store, results)
            for s in new:
                study.enqueue_trial(s.params, user_attrs=attrs_of(s, cfg),
                                    skip_if_exists=False)
            if new:
                log.info("pbt: generation %d queued (%d members)", new[0].generation, len(new))
                for line in pbt.log:
                    log.info("pbt: %s", line)
            if not todo and not pending:
                raise SearchError("pbt: a generation has a member with no trial; "
                                  f"see the study's trials ({study.study_name})")
        elif study.user_attrs.get(DONE_ATTR):
            break
        trials = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if trials:
            study.optimize(objective, n_trials=1, callbacks=callbacks, catch=(Exception,),
                           gc_after_trial=True)
        else:  # the rest of the generation runs on other workers; a dead one's trial returns
            optuna.storages.fail_stale_trials(study)
            time.sleep(poll)
    if not worker:  # workers waiting for another generation leave
        study.set_user_attr(DONE_ATTR, True)


__all__ = ["PBTObjective", "collect", "run_pbt", "strategy_of"]
