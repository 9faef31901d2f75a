from pathlib import Path

import pytest
import yaml

from tunelm.config import Config, ConfigError, field_help, from_dict, load_config

PRESETS = sorted((Path(__file__).resolve().parents[1] / "presets").glob("*.yaml"))


def test_there_are_presets():
    names = {p.stem for p in PRESETS}
    assert {"demo", "tiny", "llama3-8b-lora", "llama3-8b-qlora"} <= names


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_every_preset_loads_and_validates(preset):
    cfg = load_config(preset)
    assert isinstance(cfg, Config)
    first = preset.read_text().splitlines()[0]
    assert first.startswith("# tunelm train presets/"), "a preset opens with the command that runs it"


def test_overrides_are_typed_and_applied():
    cfg = load_config(None, ["train.learning_rate=3e-4", "data.task=contracts", "lora.r=32",
                             "lora.target_modules=[q_proj, v_proj]", "train.max_steps=10"])
    assert cfg.train.learning_rate == pytest.approx(3e-4)
    assert cfg.lora.r == 32
    assert cfg.lora.target_modules == ["q_proj", "v_proj"]
    assert cfg.train.max_steps == 10


def test_yaml_scientific_notation_strings_are_numbers():
    # PyYAML reads "3e-4" (no dot) as a string; the config must still take it.
    cfg = from_dict({"data": {"task": "contracts"}, "train": {"learning_rate": "3e-4"}})
    assert cfg.train.learning_rate == pytest.approx(3e-4)


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as err:
        from_dict({
            "data": {"task": "contracts"},
            "train": {"learning_rate": -0.001, "batch_size": 0, "scheduler": "cosinus",
                      "lerning_rate": 1},
            "lora": {"dropout": 1.5},
        })
    text = str(err.value)
    assert "train.learning_rate must be > 0, got -0.001" in text
    assert "train.batch_size must be > 0, got 0" in text
    assert "train.scheduler must be one of" in text and "'cosinus'" in text
    assert "unknown field 'train.lerning_rate' (did you mean 'learning_rate'?)" in text
    assert "lora.dropout must be in [0.0, 1.0), got 1.5" in text
    assert len(err.value.problems) == 5


def test_missing_data_is_named():
    with pytest.raises(ConfigError, match="data.train must be set"):
        from_dict({})


def test_wrong_types_are_named():
    with pytest.raises(ConfigError) as err:
        from_dict({"data": {"task": "contracts"}, "train": {"epochs": "many", "batch_size": 2.5},
                   "model": {"trust_remote_code": "maybe"}})
    text = str(err.value)
    assert "train.epochs must be a number, got 'many'" in text
    assert "train.batch_size must be an integer, got 2.5" in text
    assert "model.trust_remote_code must be true or false, got 'maybe'" in text


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config(None, ["train.learning_rate"])
    with pytest.raises(ConfigError, match="SECTION.FIELD"):
        load_config(None, ["learning_rate=1"])


def test_yaml_dump_round_trips_with_help_comments():
    cfg = from_dict({"data": {"task": "contracts"}, "lora": {"target_modules": ["q_proj", "v_proj"]},
                     "train": {"learning_rate": 1.5e-4, "max_steps": 7}})
    text = cfg.to_yaml()
    assert "# peak learning rate" in text
    again = from_dict(yaml.safe_load(text))
    assert again == cfg


def test_every_field_has_help():
    helps = field_help()
    missing = [k for k, v in helps.items() if not v]
    assert not missing, missing


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(listy)


# ------------------------------------------------------------------------------------------------
# Relative paths resolve against the config file's directory, and are stored resolved
# ------------------------------------------------------------------------------------------------


def _config_beside_data(root: Path) -> Path:
    """root/sub/my.yaml naming train.jsonl, eval.jsonl and a model directory beside it."""
    from .conftest import arithmetic_rows, write_jsonl

    sub = root / "sub"
    write_jsonl(sub / "train.jsonl", arithmetic_rows(16, 0))
    write_jsonl(sub / "eval.jsonl", arithmetic_rows(8, 1))
    (sub / "base").mkdir()
    (sub / "base" / "config.json").write_text("{}")
    (sub / "my.yaml").write_text(yaml.safe_dump({
        "model": {"name": "base"},
        "data": {"train": "train.jsonl", "eval": "eval.jsonl"},
    }))
    return sub / "my.yaml"


def test_relative_paths_resolve_against_the_config_directory(tmp_path, monkeypatch):
    config = _config_beside_data(tmp_path)
    monkeypatch.chdir(tmp_path)  # the parent directory: train.jsonl is not here
    cfg = load_config("sub/my.yaml")
    sub = (tmp_path / "sub").resolve()
    assert cfg.data.train == str(sub / "train.jsonl")
    assert cfg.data.eval == str(sub / "eval.jsonl")
    assert cfg.model.name == str(sub / "base")
    # what a study stores (cfg.to_dict()) holds paths a worker started elsewhere can open
    stored = cfg.to_dict()
    for value in (stored["data"]["train"], stored["data"]["eval"], stored["model"]["name"]):
        assert Path(value).is_absolute() and Path(value).exists()
    monkeypatch.chdir(tmp_path / "sub")  # the same config from its own directory: the same paths
    assert load_config("my.yaml") == cfg
    assert load_config(config) == cfg


def test_paths_not_beside_the_config_resolve_against_the_working_directory(tmp_path, monkeypatch):
    from .conftest import arithmetic_rows, write_jsonl

    write_jsonl(tmp_path / "data" / "train.jsonl", arithmetic_rows(4, 0))
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "p.yaml").write_text("data: {train: data/train.jsonl}\n")
    monkeypatch.chdir(tmp_path)
    cfg = load_config("presets/p.yaml", ["data.eval=data/train.jsonl"])
    assert cfg.data.train == str((tmp_path / "data" / "train.jsonl").resolve())
    assert cfg.data.eval == cfg.data.train  # a --set path is the command line's: the cwd's
    # names that are not paths, and paths that exist nowhere, stay as written
    cfg = load_config(None, ["data.train=missing.jsonl", "model.name=tiny:hidden=32"])
    assert (cfg.data.train, cfg.model.name) == ("missing.jsonl", "tiny:hidden=32")
    assert load_config(None, ["data.task=contracts"]).model.name == "smollm2-135m"


def test_train_from_another_directory_finds_the_data_beside_the_config(tmp_path):
    import subprocess
    import sys

    config = _config_beside_data(tmp_path)
    overrides = ["model.name=tiny", "model.precision=fp32", "data.max_length=64",
                 "train.max_steps=2", "train.eval_steps=2", "train.batch_size=4"]
    cmd = [sys.executable, "-m", "tunelm", "-q", "train", "sub/my.yaml", "--out", "run"]
    for item in overrides:
        cmd += ["--set", item]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    stored = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert stored["data"]["train"] == str(config.parent.resolve() / "train.jsonl")
