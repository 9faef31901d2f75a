"""`pbt`: population-based training (`search/pbt.py` decides, `search/pbt_run.py` runs the
member-generations as queued trials that any worker may take)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import SearchStrategy

if TYPE_CHECKING:
    from ...config import Config, SearchConfig
    from ..dimensions import Dimension
    from .base import Session


class PBTSearch(SearchStrategy):
    name = "pbt"
    help = ("population-based training: members train in generations; the weak copy the "
            "strong's state and perturb their values")
    stop_reason = "pbt finished"
    counts_trials = False  # population x generations trials; hours and timeout still apply
    prunes = False  # trials are generation windows at different steps, not one run's fidelities
    local_workers = False
    why_one_process = ("its coordinator runs in `tunelm search`; start `tunelm worker "
                       "--storage URL --study NAME` beside it")
    resumes_training_state = True

    def trial_limit(self, cfg: Config, dims: list[Dimension]) -> int:
        return cfg.search.pbt_population * cfg.search.pbt_generations

    def run_equivalents(self, cfg: Config, dims: list[Dimension]) -> tuple[float, float] | None:
        """Each member trains generations x steps in all; a full run is train.max_steps (None
        without it: an epoch-based run has no fixed length to compare with)."""
        if not cfg.train.max_steps:
            return None
        s = cfg.search
        runs = s.pbt_population * s.pbt_generations * s.pbt_generation_steps / cfg.train.max_steps
        return runs, runs

    def plan(self, cfg: Config, dims: list[Dimension]) -> str:
        s = cfg.search
        return (f"plan: {s.pbt_population} members x {s.pbt_generations} generations of "
                f"{s.pbt_generation_steps} steps: {s.pbt_population * s.pbt_generations} "
                f"trials, {s.pbt_population * s.pbt_generations * s.pbt_generation_steps} "
                "training steps")

    def config_problems(self, search: SearchConfig) -> list[str]:
        problems = []
        if search.isolate:
            problems.append("search.isolate does not apply to pbt yet (a member resumes its "
                            "parent's checkpoint in the worker process); set search.isolate "
                            "false")
        if search.objective != "eval_loss":
            problems.append(f"search.objective {search.objective} does not apply to pbt: "
                            "members are ranked by their eval loss; use eval_loss")
        return problems

    def drive(self, session: Session) -> None:
        # pbt_run loads Transformers (its trials resume training states): only where it runs
        from ..pbt_run import run_pbt

        run_pbt(session.study, session.cfg, session.objective, session.callbacks, session.stop,
                session.dims, session.out, worker=session.worker)
