"""Config validation: schema errors and cross-reference errors name the key, before any job."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from medvqa.spec import ConfigError
from medvqa.workflow_config import check_config

REPO = Path(__file__).resolve().parents[2]


def default_config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def dry_run(config: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    return subprocess.run(
        ["snakemake", "-s", str(REPO / "Snakefile"), "--configfile", "config.yaml", "-n", "--cores", "1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )


def test_default_and_paper_configs_pass():
    check_config(default_config())
    check_config(yaml.safe_load((REPO / "configs" / "paper.yaml").read_text()))


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda c: c["datasets"]["demo"]["filters"].update(langauge="en"), "langauge"),
        (lambda c: c["datasets"]["demo"].update(image_size="big"), "image_size"),
        (lambda c: c["datasets"]["demo"].update(source="kaggle"), "kaggle"),
        (lambda c: c["datasets"]["demo"].update(on_bad_sample="ignore"), "ignore"),
        (lambda c: c.update(extra_key=1), "extra_key"),
    ],
)
def test_schema_errors_fail_before_any_job_and_name_the_key(tmp_path, edit, expected):
    config = copy.deepcopy(default_config())
    edit(config)
    result = dry_run(config, tmp_path)
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_unknown_tokenizer_reference_is_named(tmp_path):
    config = copy.deepcopy(default_config())
    config["datasets"]["demo"]["tokenizers"] = ["bert"]
    with pytest.raises(ConfigError, match=r"datasets\.demo\.tokenizers: unknown tokenizer 'bert'"):
        check_config(config)
    result = dry_run(config, tmp_path)
    assert result.returncode != 0 and "unknown tokenizer 'bert'" in result.stdout + result.stderr


def test_baseline_names_are_reserved():
    """A configured model named like a baseline would share its predictions path."""
    config = copy.deepcopy(default_config())
    config["models"]["baseline-majority"] = next(iter(config["models"].values()))
    with pytest.raises(ConfigError, match=r"models\.baseline-majority: names starting with 'baseline-' are reserved"):
        check_config(config)


def test_unknown_source_option_is_named():
    config = copy.deepcopy(default_config())
    config["datasets"]["demo"]["options"]["n_imgs"] = 10
    with pytest.raises(Exception, match="n_imgs"):
        check_config(config)


def _with_experiment(datasets: list[str], models: list[str]) -> dict:
    config = copy.deepcopy(default_config())
    config["experiments"].append({"datasets": datasets, "models": models})
    return config


@pytest.mark.parametrize("datasets, models, message", [
    (["demo_captions"], ["cnn_lstm_demo"],
     r"experiments\[2\]: model 'cnn_lstm_demo' \(cnn_lstm\) does not work on caption dataset 'demo_captions'"),
    (["demo_captions"], ["flamingo_classify_demo"], r"'flamingo_classify_demo' \(flamingo\) does not work on caption"),
    (["demo"], ["blip_caption_demo"], r"'blip_caption_demo' \(blip\) does not work on vqa dataset 'demo'"),
    (["demo_captions"], ["flamingo_demo"], "'flamingo_demo' has no caption: settings"),
])
def test_models_that_cannot_learn_or_caption_a_dataset_are_named(datasets, models, message):
    with pytest.raises(ConfigError, match=message):
        check_config(_with_experiment(datasets, models))


def test_flamingo_captions_only_once_trained_and_tokenizer_texts_must_exist():
    config = copy.deepcopy(default_config())
    del config["models"]["flamingo_caption_demo"]["train"]
    with pytest.raises(ConfigError, match=r"models\.flamingo_caption_demo: flamingo captions only once trained"):
        check_config(config)
    config = copy.deepcopy(default_config())
    config["pretrained"]["qwen2-vl-tiny"]["text_from"] = ["demo", "roco"]
    with pytest.raises(ConfigError, match=r"pretrained\.qwen2-vl-tiny\.text_from: unknown dataset 'roco'"):
        check_config(config)


def test_published_number_under_another_protocol_fails_at_load():
    config = copy.deepcopy(default_config())
    config["report"]["published"] = [{"dataset": "demo", "source": "LLaVA-Med (Li et al. 2023)", "protocol": "llava_med",
                                      "metric": "em_closed", "value": 83.09}]
    with pytest.raises(ConfigError, match=r"report\.published\[0\]: published protocol 'llava_med' cannot stand "
                                          r"beside metric 'em_closed', which this project computes under protocol "
                                          r"'exact_match'"):
        check_config(config)
    config["report"]["published"][0]["metric"] = "llava_med_closed"
    check_config(config)


def _dry_run_fails_naming(config: dict, tmp_path: Path, expected: str) -> None:
    result = dry_run(config, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and expected in output, output[-2000:]
    assert "Traceback" not in output and not (tmp_path / "results").exists()


def test_unknown_dataset_in_an_experiment_is_named_not_a_key_error(tmp_path):
    config = _with_experiment(["nope"], ["cnn_lstm_demo"])
    _dry_run_fails_naming(config, tmp_path, "experiments[2].datasets: unknown dataset 'nope'")


def test_image_size_not_a_multiple_of_a_tiny_patch_size_fails_at_load(tmp_path):
    config = copy.deepcopy(default_config())
    config["datasets"]["demo"]["image_size"] = 60
    _dry_run_fails_naming(
        config, tmp_path,
        # pretrained entries are checked in key order; yaml.safe_dump sorts them (blip-vqa-tiny first)
        "pretrained.blip-vqa-tiny.model.patch_size: datasets.demo.image_size 60 is not a multiple of patch_size 8",
    )


def test_a_missing_tokenizer_or_checkpoint_directory_is_named(tmp_path):
    config = copy.deepcopy(default_config())
    config["tokenizers"]["clip-tiny"]["path"] = "/nonexistent/tok"
    _dry_run_fails_naming(config, tmp_path, "tokenizers.clip-tiny.path: '/nonexistent/tok' does not exist")
    config = copy.deepcopy(default_config())
    model = next(m for m in config["models"].values() if "checkpoint" in m.get("model", {}))
    model["model"]["checkpoint"] = "./no/such/dir"
    with pytest.raises(ConfigError, match=r"model\.checkpoint: './no/such/dir' does not exist"):
        check_config(config)
    config["tokenizers"]["clip-tiny"]["path"] = "openai/clip-vit-base-patch32"  # a hub id stays allowed
    model["model"]["checkpoint"] = "Salesforce/blip-vqa-base"
    check_config(config)


def test_duplicate_yaml_keys_and_syntax_errors_fail_with_file_and_line(tmp_path):
    text = (REPO / "config.yaml").read_text()
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("seed:"))
    indent = lines[at][: len(lines[at]) - len(lines[at].lstrip())]
    duplicated = "\n".join([*lines[: at + 1], f"{indent}seed: 7", *lines[at + 1:]]) + "\n"
    (tmp_path / "config.yaml").write_text(duplicated)
    result = subprocess.run(["snakemake", "-s", str(REPO / "Snakefile"), "--configfile", "config.yaml", "-n",
                             "--cores", "1"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert f"config.yaml, line {at + 2}: duplicate key 'seed' (first at line {at + 1})" in result.stdout + result.stderr
    # The default config file (no --configfile) is read strictly before Snakemake's configfile: directive.
    (tmp_path / "config.yaml").write_text(text.replace("experiments:", "experiments: [", 1))
    result = subprocess.run(["snakemake", "-s", str(REPO / "Snakefile"), "-n", "--cores", "1"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "config.yaml, line " in result.stderr + result.stdout
    assert "YAML syntax error" in result.stderr + result.stdout
    checked = subprocess.run([sys.executable, "-m", "medvqa.workflow_config", "config.yaml"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
    assert checked.returncode == 1 and "YAML syntax error" in checked.stderr
    assert f"line {text[:text.index('experiments:')].count(chr(10)) + 2}" in checked.stderr


def test_the_default_workflow_profile_shows_a_failed_jobs_log_on_the_console(tmp_path):
    """Snakemake reads profiles/default/ beside the Snakefile for every run of the workflow."""
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "default").symlink_to(REPO / "profiles" / "default")
    (tmp_path / "Snakefile").write_text(
        # The log's text differs from the shell command's (which Snakemake prints anyway).
        'rule fails:\n    output: "x"\n    log: "x.log"\n    shell: "echo the-reason-$((6*7)) > {log}; exit 1"\n'
    )
    result = subprocess.run(["snakemake", "--cores", "1"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "the-reason-42" in result.stdout + result.stderr
