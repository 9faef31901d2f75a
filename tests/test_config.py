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
