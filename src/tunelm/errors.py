"""One exception hierarchy. The CLI maps bad input to exit code 2 and failed runs to exit code 1.

Every message says what was wrong and what to do next, so the CLI prints it without a traceback.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_PREEMPTED = 75  # sysexits' EX_TEMPFAIL: stopped on SIGTERM with a checkpoint; run it again


class TunelmError(Exception):
    """Base of every error tunelm raises on purpose."""

    exit_code = EXIT_FAILED


class BadInputError(TunelmError):
    """The user's input (config, data, arguments) is wrong: exit code 2."""

    exit_code = EXIT_BAD_INPUT


class ConfigError(BadInputError):
    """One or more config fields are invalid. `problems` lists every one of them."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            message = f"{len(self.problems)} problems in the config:\n" + "\n".join(
                f"  - {p}" for p in self.problems
            )
        super().__init__(message)


class DataError(BadInputError):
    """A dataset file is missing, empty or malformed (the message names file, line and field)."""


class ModelError(BadInputError):
    """A model cannot be found or loaded as asked."""


class StorageError(BadInputError):
    """A study's storage cannot be opened: its driver is missing (the message names the extra to
    install), its URL is malformed, or its database file is not one. Passwords are never shown."""


class TrainingError(TunelmError):
    """A run started but failed (diverged, NaN, crashed): exit code 1."""

    def __init__(self, message: str, result: dict | None = None):
        super().__init__(message)
        self.result = result


class SearchError(TunelmError):
    """A study could not run as asked."""


class Preempted(TunelmError):
    """SIGTERM (a cluster's preemption notice) stopped a run after saving a checkpoint: exit code
    75. The same command, or the study's next worker, resumes from the checkpoint."""

    exit_code = EXIT_PREEMPTED

    def __init__(self, message: str, step: int | None = None, checkpoint: str | None = None):
        super().__init__(message)
        self.step, self.checkpoint = step, checkpoint


class DiskFullError(TunelmError):
    """A run or a study could not write its files: the disk (or a file size limit) is full:
    exit code 1. The message says what is kept and how to continue."""
