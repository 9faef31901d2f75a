"""The process environment, set in one place: what the command line sets for itself (quiet
libraries, no tokenizer threads fighting the trainer's), and what each local worker process
gets (its GPU, or its share of the CPU cores)."""

from __future__ import annotations

import os
import warnings

QUIET = {
    "TOKENIZERS_PARALLELISM": "false",  # tokenizers' threads compete with the trainer's
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",  # the data cache logs its own line
}


def configure_process() -> None:
    """For the `tunelm` command: quiet tokenizers' threads, FutureWarnings and the progress
    bars of Transformers and datasets (tunelm logs its own lines)."""
    for key, value in QUIET.items():
        os.environ.setdefault(key, value)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass


def worker_env(devices: tuple[str, ...], threads: int, base: dict) -> dict:
    """The environment of a local worker: its slice of the GPUs (CUDA_VISIBLE_DEVICES, the
    ids the scheduler gave this job), or on a CPU its share of the cores (OMP/MKL threads of
    each of its ranks). `search/slices.py` decides both."""
    env = dict(base)
    if devices:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(devices)
    else:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
                   OMP_WAIT_POLICY="PASSIVE")
    env.update(QUIET)
    return env
