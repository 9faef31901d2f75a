"""A study, seen from outside the search package: open it to run or to read, run it, summarize
it. One name per idea, each defined in its own module:

    storage.py    where a study lives (a directory or a URL), SQLite locking, heartbeats
    opener.py     open_study (to run), load_study (to read)
    session.py    the study as a strategy drives it, and the budget that stops it
    run.py        run_search, run_fixed_trial
    results.py    SearchResult, summarize, describe, best_config, keep_top
"""

from __future__ import annotations

from .opener import CONFIG_ATTR, load_study, open_study
from .results import SearchResult, best_config, describe, keep_top, summarize
from .run import run_fixed_trial, run_search
from .session import curves
from .storage import locate, make_storage, storage_url

__all__ = ["CONFIG_ATTR", "SearchResult", "best_config", "curves", "describe", "keep_top",
           "load_study", "locate", "make_storage", "open_study", "run_fixed_trial",
           "run_search", "storage_url", "summarize"]
