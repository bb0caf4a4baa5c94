"""One family registry: every family a config names exists, with one interface; the torch-free
family table (medvqa.families) agrees with it; model entries are checked at workflow start-up
without importing torch."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from medvqa.demo.tiny_checkpoints import TINY_KINDS, check_pretrained
from medvqa.families import FAMILIES, ModelConfig, family_names
from medvqa.models.common import ModelFamily
from medvqa.models.registry import MODEL_FAMILIES
from medvqa.spec import ConfigError
from medvqa.config_files import expand_experiments, load_workflow_config
from medvqa.workflow_config import check_config

REPO = Path(__file__).resolve().parents[2]
CONFIGS = [REPO / "config.yaml", REPO / "configs" / "paper.yaml"]


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_configured_family_is_registered(path):
    families = {entry["family"] for entry in load(path)["models"].values()}
    assert families and families <= set(MODEL_FAMILIES)


def test_the_family_table_matches_the_registry():
    assert list(FAMILIES) == list(MODEL_FAMILIES)
    assert {name: family.spec for name, family in MODEL_FAMILIES.items()} == {n: f.spec for n, f in FAMILIES.items()}
    assert all(isinstance(family, ModelFamily) for family in MODEL_FAMILIES.values())
    generative = {name for name, family in MODEL_FAMILIES.items() if family.monitor == "val_loss"}
    assert generative == set(family_names(generative=True)) == {"flamingo", "blip", "vlm_sft"}
    assert all(FAMILIES[name].spec.TOKEN_KIND is None for name in generative)
    assert family_names(attention_maps=True) == ("cnn_lstm",)


def test_families_with_a_hugging_face_export_declare_it_in_their_training_rules():
    exporting = {name: f.export_dir for name, f in FAMILIES.items() if f.export_dir}
    assert exporting == {"blip": "hf_model", "vlm_sft": "adapter"}
    assert {name for name, family in MODEL_FAMILIES.items() if family.export} == set(exporting)
    rules = (REPO / "rules" / "train.smk").read_text()
    for name, directory in exporting.items():
        declared = f'{directory}=directory("results/models/{{dataset}}/{{model}}/{{seed}}/{directory}")'
        assert rules.count(declared) == 2, name  # one GPU and torchrun
        assert rules.count(f'model=models_of(["{name}"], zero_shot=False') == 2, name


def test_check_config_names_an_unknown_family():
    config = copy.deepcopy(load(REPO / "config.yaml"))
    config["models"]["cnn_lstm_demo"]["family"] = "cnn_lstn"
    expand_experiments(config)
    with pytest.raises(ConfigError, match=r"^models\.cnn_lstm_demo: family='cnn_lstn' is not one of 'cnn_lstm'"):
        check_config(config)


def test_demo_builds_every_family_and_both_vlm_variants():
    config = load(REPO / "config.yaml")
    built = {name for experiment in config["experiments"] for name in experiment["models"]}
    entries = {name: config["models"][name] for name in built}
    assert {entry["family"] for entry in entries.values()} == set(MODEL_FAMILIES)
    trained = ["train" in entry for entry in entries.values() if entry["family"] == "vlm_sft"]
    assert True in trained and False in trained
    kinds = {entry.get("kind", "clip") for entry in config["pretrained"].values()}
    assert kinds >= {"clip", "clip_gpt2", "blip_vqa", "qwen2_vl"}
    # The other VLM architectures left the demo for configs/vlm_families.yaml (layered over it; run by
    # tests/workflow/test_vlm_families.py): together they build every tiny VLM.
    families = load(REPO / "configs" / "vlm_families.yaml")
    assert {name for e in families["experiments"] for name in e["models"]} == set(families["models"])
    kinds |= {entry["kind"] for entry in families["pretrained"].values()}
    assert kinds >= {"clip", "clip_gpt2", "blip_vqa", "qwen2_vl", "qwen2_5_vl", "internvl", "llava", "llava_next"}


def test_config_check_imports_no_torch():
    code = (
        "import sys, yaml\n"
        "from medvqa.config_files import expand_experiments\nfrom medvqa.workflow_config import check_config\n"
        "from medvqa.demo.tiny_checkpoints import check_pretrained\n"
        f"config = yaml.safe_load(open({str(REPO / 'config.yaml')!r}))\n"
        "expand_experiments(config); check_config(config); check_pretrained(config)\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m["flamingo_demo"].update(tokenizer="words"), "tokenises the text itself"),
        (lambda m: m["cnn_lstm_demo"].update(generate={"max_new_tokens": 4}), "generative families"),
        (lambda m: m["flamingo_demo"]["generate"].update(num_beams=3), "num_beams is not implemented by the flamingo"),
        (lambda m: m["blip_demo"]["model"].update(checkpoint="results/pretrained/nothing"), "unknown pretrained"),
        (lambda m: m["qwen2_vl_lora_demo"]["model"].update(lora_rank=4), "lora_rank"),
        (lambda m: m["clip_demo"].update(tokenizer="words"), "reads 'hf' tokens"),
    ],
)
def test_bad_model_entries_are_named_before_any_job(edit, message):
    config = copy.deepcopy(load(REPO / "config.yaml"))
    edit(config["models"])
    expand_experiments(config)
    with pytest.raises(ConfigError, match=message):
        check_config(config)


def test_bad_tiny_checkpoint_sizes_are_named():
    config = load_workflow_config(REPO / "config.yaml", REPO / "configs" / "vlm_families.yaml")  # has llava-tiny
    config["pretrained"]["llava-tiny"]["model"] = {"image_size": 50}
    check_config(config)  # the names are right; the stand-ins' sizes are checked by the rules that build them
    with pytest.raises(ConfigError, match=r"pretrained\.llava-tiny\.model.*multiple of 28"):
        check_pretrained(config)


def test_generation_settings_of_an_entry():
    entry = ModelConfig.from_mapping({"family": "vlm_sft", "model": {"checkpoint": "x"}, "generate": {"num_beams": 2}})
    assert entry.generation().num_beams == 2 and entry.token_kind is None
    assert ModelConfig.from_mapping({"family": "cnn_lstm", "tokenizer": "words", "train": {}}).generation() is None
