"""Shared fixtures (tiny configs and small datasets that need no download), and the test layers.

Layers: a test that trains, loads a model, runs a trial, study, lr-find or evaluation end to end,
or starts PostgreSQL or Chromium is marked `integration` here, by file, by fixture or by name
(the lists below), so that `pytest -m "not integration"` (`make test-fast`) is the pure suite.
A test left unmarked that builds a model fails, naming the list to add it to.
"""

from __future__ import annotations

import functools
import json
import os
import random
import sys
import warnings
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session", autouse=True)
def _data_cache(tmp_path_factory):
    """Tokenized data is cached (`$TUNELM_DATA_CACHE`): the suite's entries go to a temporary
    folder, not the user's ~/.cache/tunelm/data. A test may point it elsewhere (monkeypatch)."""
    old = os.environ.get("TUNELM_DATA_CACHE")
    os.environ["TUNELM_DATA_CACHE"] = str(tmp_path_factory.mktemp("data-cache"))
    yield
    if old is None:
        os.environ.pop("TUNELM_DATA_CACHE", None)
    else:
        os.environ["TUNELM_DATA_CACHE"] = old


warnings.filterwarnings("ignore", category=FutureWarning)

ROOT = Path(__file__).resolve().parents[1]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def arithmetic_rows(n: int, seed: int) -> list[dict]:
    """Short chat examples (a few dozen bytes): tiny-model runs take well under a second a step."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        rows.append({"messages": [
            {"role": "user", "content": f"{a}+{b}="},
            {"role": "assistant", "content": json.dumps({"sum": a + b})},
        ]})
    return rows


@pytest.fixture
def small_data(tmp_path) -> dict[str, str]:
    train = write_jsonl(tmp_path / "data" / "train.jsonl", arithmetic_rows(64, 0))
    evals = write_jsonl(tmp_path / "data" / "eval.jsonl", arithmetic_rows(16, 1))
    return {"train": str(train), "eval": str(evals)}


@pytest.fixture
def tiny_config(small_data):
    """A factory: tiny_config(train={...}, lora={...}) -> a validated Config."""
    from tunelm.config import from_dict

    def make(**sections):
        raw = {
            "model": {"name": "tiny", "precision": "fp32"},
            "lora": {"r": 4, "alpha": 32, "dropout": 0.0},
            "data": {"train": small_data["train"], "eval": small_data["eval"], "max_length": 64},
            "train": {"learning_rate": 3e-3, "batch_size": 8, "max_steps": 12, "eval_steps": 4,
                      "warmup_ratio": 0.1, "early_stopping_patience": None},
            "eval": {"metric": "none"},
        }
        for name, values in sections.items():
            raw.setdefault(name, {}).update(values)
        return from_dict(raw)

    return make


def read_metrics(run_dir) -> list[dict]:
    return [json.loads(line) for line in Path(run_dir, "metrics.jsonl").read_text().splitlines()]


def require_real(what: str, present: bool, hint: str) -> None:
    """Real servers and browsers (PostgreSQL, Chromium) are set up by `make test`, which sets
    TUNELM_REAL_SERVICES=1: there a missing one fails the test. Elsewhere (a bare `pytest` on a
    machine without them) the test is skipped with the command that installs it."""
    if present:
        return
    message = f"{what} is not available: {hint}"
    if os.environ.get("TUNELM_REAL_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


# ---- test layers --------------------------------------------------------------------------------
# Decided here, not by a decorator in each file, so that a new training test in a listed file or
# with a listed fixture is marked without anyone remembering to. Names are "file::function".
INTEGRATION_FILES = {"test_demo.py", "test_distributed.py", "test_dashboard.py",
                     "test_report_browser.py", "test_train.py", "test_data_packing.py",
                     "test_api.py", "test_ddp.py",
                     "test_preemption.py", "test_fsdp.py"}
# small_data: every tiny-model config (tiny_config, config files) is built on it; the others build
# a study, a run or a model once per module, or start a server or a browser
INTEGRATION_FIXTURES = {"small_data", "study_dir", "tiny_run", "proxy_study", "model_dir",
                        "postgres_url", "browser"}
# tests that load a model or train without any of those fixtures
INTEGRATION_TESTS = {
    "test_data_sources.py::test_malformed_parquet_exits_2_with_the_reason",
    "test_data_sources.py::test_a_missing_split_exits_2_with_the_reason",
    "test_models.py::test_local_directory_round_trip",
    "test_models.py::test_lora_variants",
    "test_models.py::test_full_fine_tuning_trains_everything",
    "test_models.py::test_bad_target_modules_are_bad_input",
    "test_models.py::test_embedded_default_loads_from_the_wheel_and_is_cached",
    "test_recommend.py::test_yaml_output_has_reasons_and_runs_with_train",
    "test_recommend.py::test_measure_uses_a_few_real_steps",
    "test_diagnose.py::test_trainer_runs_give_the_right_verdict",
    # `tunelm train` loads the model before it reads the data
    "test_cli_errors.py::test_malformed_data",
    "test_cli_errors.py::test_every_example_too_long",
    "test_cli_errors.py::test_missing_data_file",
    # the fault drill's cases whose child process loads the tiny model (bad rows are found by
    # reading the data, after the model; a killed run trains)
    "test_faults.py::test_empty_data_file",
    "test_faults.py::test_binary_data_file",
    "test_faults.py::test_truncated_jsonl_line",
    "test_faults.py::test_sigkill_during_train_then_rerun",
    "test_faults.py::test_disk_full_while_the_checkpoint_is_written",
    # the drill's Ctrl-C and full-disk cases run studies on the tiny model in child processes
    "test_faults.py::test_ctrl_c_during_search_marks_the_trial_and_the_study_continues",
    "test_faults.py::test_a_second_ctrl_c_quits_at_once",
    "test_faults.py::test_ctrl_c_during_search_with_workers",
    "test_faults.py::test_ctrl_c_during_an_isolated_trial",
    "test_faults.py::test_disk_full_during_a_study",
    "test_faults.py::test_ctrl_c_during_train",
}
# tests that take the data fixtures but stop before a model is built (bad input, dry runs)
PURE_TESTS = {
    "test_tracking.py::test_report_to_accepts_a_list_or_a_comma_string",
    "test_tracking.py::test_unknown_tracker_names_the_field_and_the_accepted_values",
    "test_tracking.py::test_cli_report_to_bogus_exits_2_before_anything_runs",
    "test_tracking.py::test_missing_wandb_is_a_config_error_naming_the_package",
    "test_tracking.py::test_a_missing_tracker_stops_a_search_before_its_first_trial",
    "test_tracking.py::test_wandb_mapping",
    "test_tracking.py::test_the_environment_is_set_for_one_run_and_restored",
    "test_search_workers.py::test_bad_worker_counts",
    "test_search_workers.py::test_dry_run_estimates_the_cost",
    "test_lr_find.py::test_cli_lr_find_bad_values_exit_2",
    "test_evaluate.py::test_study_without_a_finished_trial",
    "test_report.py::test_report_of_a_study_with_no_trials_yet",
    "test_search.py::test_workers_do_not_join_a_protocol_study",
}
# Every test has pyproject's `timeout` (240 s: 4x the slowest other test, 57 s, in a full run on a
# 2-core CPU shared with other jobs, docs/benchmarks.md); these took 69-213 s there (workers,
# child processes, PostgreSQL, whole studies) and get LONG_TIMEOUT.
LONG_TIMEOUT = 600
LONG_TESTS = {
    "test_distributed.py::test_three_workers_one_killed",
    "test_search_workers.py::test_isolated_trials_run_in_child_processes",
    "test_search_workers.py::test_local_workers_share_one_study",
    "test_search_workers.py::test_bad_data_ends_the_study_with_exit_2",
    "test_pbt.py::test_a_worker_process_joins_a_pbt_study",
    "test_pbt.py::test_pbt_end_to_end_on_the_tiny_model",
    "test_demo.py::test_demo_recommends_searches_compares_and_reports",
    "test_tracking.py::test_isolated_trials_and_workers_keep_the_trial_names",
    "test_transfer.py::test_transfer_runs_the_top_configs_on_the_larger_model",
    "test_export.py::test_trl_script_reproduces_the_run",
    "test_preemption.py::test_two_ranks_save_on_sigterm_and_resume_with_every_ranks_rng",
    # three or four `tunelm search` processes in a row, or a parent and two workers
    "test_faults.py::test_ctrl_c_during_search_marks_the_trial_and_the_study_continues",
    "test_faults.py::test_ctrl_c_during_search_with_workers",
    "test_faults.py::test_disk_full_during_a_study",
}


def is_integration(file: str, name: str, fixtures, markers=()) -> bool:
    """The layer of test `name` (its function name, without parameters) in `file`."""
    key = f"{file}::{name}"
    if key in PURE_TESTS:
        return False
    return (file in INTEGRATION_FILES or key in INTEGRATION_TESTS
            or bool(INTEGRATION_FIXTURES & set(fixtures)) or bool({"slow", "gpu"} & set(markers)))


def pytest_collection_modifyitems(config, items):
    for item in items:
        name = getattr(item, "originalname", None) or item.name
        if is_integration(item.path.name, name, getattr(item, "fixturenames", ()),
                          [m.name for m in item.iter_markers()]):
            item.add_marker(pytest.mark.integration)
        if f"{item.path.name}::{name}" in LONG_TESTS and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(LONG_TIMEOUT))


# A pure test must not build a model: PreTrainedModel.__init__ is watched (once transformers is
# loaded, as collecting the suite does) and a pure test during whose setup, call or teardown a
# model was built fails at teardown. Model building is what every training path shares.
_BUILT = pytest.StashKey[str]()
_running: list = []  # the item whose setup, call or teardown is running


def _watch_models() -> None:
    modeling = sys.modules.get("transformers.modeling_utils")
    if modeling is None or hasattr(modeling.PreTrainedModel.__init__, "tunelm_watched"):
        return
    init = modeling.PreTrainedModel.__init__

    @functools.wraps(init)
    def watched(self, *args, **kwargs):
        if _running and _running[0].get_closest_marker("integration") is None:
            _running[0].stash.setdefault(_BUILT, type(self).__name__)
        return init(self, *args, **kwargs)

    watched.tunelm_watched = True
    modeling.PreTrainedModel.__init__ = watched


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _watch_models()
    _running[:] = [item]
    yield
    _running.clear()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    built = item.stash.get(_BUILT, None)
    if call.when == "teardown" and built and not report.failed:
        report.outcome = "failed"
        report.longrepr = (
            f"{item.nodeid} is not marked integration but built a model ({built}): a test that "
            "loads a model or trains belongs in the integration layer; add it (or the fixture "
            "that builds the model) to the lists in tests/conftest.py")
