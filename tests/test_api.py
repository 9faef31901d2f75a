"""The Python API: the example of docs/python_api.md runs as written."""

import re

from .conftest import ROOT


def test_the_documented_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TUNELM_DATA_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    text = (ROOT / "docs" / "python_api.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    scope: dict = {}
    exec(compile(code, "docs/python_api.md", "exec"), scope)
    result, study = scope["result"], scope["study"]
    assert result.status == "ok" and result.best_eval_loss is not None
    assert result.final_score == result.raw["final_score"] and result.final_score["examples"] > 0
    assert (tmp_path / "runs" / "api-train" / "result.json").exists()
    assert result.raw["data"]["train"]["format"] == "prompt_completion"
    assert len([t for t in study.trials if not t.get("not_run")]) == 2
    assert study.best_value is not None
    inputs = list((tmp_path / "cache" / "inputs").glob("train-*.jsonl"))
    assert len(inputs) == 1  # the same rows, written once for both calls


def test_config_from_a_dict_a_config_or_a_yaml_path_and_data_from_a_dataset(tmp_path, monkeypatch):
    import pytest
    from datasets import Dataset

    from tunelm.api import as_config, place_data
    from tunelm.errors import ConfigError

    monkeypatch.setenv("TUNELM_DATA_CACHE", str(tmp_path / "cache"))
    cfg = as_config(ROOT / "presets" / "tiny.yaml", {"train.learning_rate": 1e-3})
    assert cfg.train.learning_rate == 1e-3
    assert as_config(cfg).to_dict() == cfg.to_dict()
    assert as_config(cfg.to_dict()).to_dict() == cfg.to_dict()
    with pytest.raises(ConfigError, match="train.learning_rate must be > 0"):
        as_config(cfg, {"train.learning_rate": -1})
    path = place_data(Dataset.from_list([{"text": "a"}, {"text": "b"}]), "train")
    assert (tmp_path / "cache" / "inputs") in __import__("pathlib").Path(path).parents
    with pytest.raises(ConfigError, match="a path, a list of dicts or a datasets.Dataset"):
        place_data(42, "train")


def test_the_api_names_stay_callable_after_their_subpackages_are_imported():
    import tunelm
    import tunelm.diagnose.checks  # noqa: F401  (a submodule import rebinds the attribute)
    import tunelm.search.study  # noqa: F401

    for name in ("train", "search", "recommend", "evaluate", "diagnose"):
        assert callable(getattr(tunelm, name)), name
    assert tunelm.search.study.run_search is not None  # and they are still the subpackages
