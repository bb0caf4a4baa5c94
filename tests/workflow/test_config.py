"""Config validation: schema errors and cross-reference errors name the key, before any job."""

import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from medvqa.demo.tiny_checkpoints import check_pretrained
from medvqa import targets
from medvqa.spec import ConfigError
from medvqa.config_files import check_structure, expand_experiments
from medvqa.workflow_config import check_config

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "rules" / "config.schema.yaml"


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
        (lambda c: c["datasets"]["demo"].setdefault("filters", {}).update(langauge="en"), "langauge"),
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


def test_the_readme_example_errors_are_what_the_checks_print():
    readme = " ".join((REPO / "README.md").read_text().split())
    typo, size = copy.deepcopy(default_config()), copy.deepcopy(default_config())
    typo["datasets"]["demo"].setdefault("filters", {}).update(langauge="en")
    size["datasets"]["demo"].update(image_size=4)
    for config, shown in ((typo, "`datasets.demo.filters: unknown key(s) 'langauge'; allowed: language, ...`"),
                          (size, "`datasets.demo: image_size=4 is outside [8, 1024]`")):
        assert shown in readme
        with pytest.raises(ConfigError) as error:
            check_config(config)
        assert str(error.value).startswith(shown.strip("`").removesuffix(", ..."))


def test_image_caches_take_half_the_cores_and_run_with_the_data_stages(tmp_path):
    """README "What runs": locally an image cache job takes at most half of --cores, at the data priority."""
    (tmp_path / "config.yaml").write_text((REPO / "config.yaml").read_text())
    for cores, threads in (("2", None), ("8", "threads: 4")):
        out = subprocess.run(
            ["snakemake", "-s", str(REPO / "Snakefile"), "--configfile", "config.yaml", "-n", "--cores", cores, "data"],
            cwd=tmp_path, capture_output=True, text=True, timeout=120,
        ).stdout
        for rule in ("image_cache", "image_cache_png"):
            job = re.split(r"\n(?:\[|rule |localrule )", out.split(f"rule {rule}:", 1)[1], maxsplit=1)[0]
            assert "priority: 3" in job, job
            # no threads line: one thread (Snakemake prints threads only when > 1)
            assert (threads in job) if threads else ("threads:" not in job), job


def ds(config: dict) -> dict:
    return config["datasets"]["demo"]


def m(config: dict, name: str) -> dict:
    return config["models"][name]


# (rule, edit of the default config that breaks it, key the one-line error must name): every value rule
# rules/config.schema.yaml held before it became structure-only, now checked once, by the specs.
VALUE_RULES = [
    ("filters.question_type", lambda c: ds(c).setdefault("filters", {}).update(question_type="yesno"), "question_type"),
    ("filters.subsample", lambda c: ds(c).setdefault("filters", {}).update(subsample=0), "subsample"),
    ("filters.subsample_splits", lambda c: ds(c).setdefault("filters", {}).update(subsample_splits=["dev"]), "subsample_splits"),
    ("filters.leakage", lambda c: ds(c).setdefault("filters", {}).update(leakage="remove"), "leakage"),
    ("filters.language", lambda c: ds(c).setdefault("filters", {}).update(language=3), "language"),
    ("leakage.hash", lambda c: ds(c).setdefault("leakage", {}).update(hash="md5"), "hash"),
    ("leakage.hash_size", lambda c: ds(c).setdefault("leakage", {}).update(hash_size=64), "hash_size"),
    ("leakage.threshold", lambda c: ds(c).setdefault("leakage", {}).update(threshold=-1), "threshold"),
    ("source", lambda c: ds(c).update(source="kaggle"), "source"),
    ("task", lambda c: ds(c).update(task="seg"), "task"),
    ("image_size low", lambda c: ds(c).update(image_size=4), "image_size"),
    ("image_size type", lambda c: ds(c).update(image_size="big"), "image_size"),
    ("on_bad_sample", lambda c: ds(c).update(on_bad_sample="ignore"), "on_bad_sample"),
    ("dataset unknown key", lambda c: ds(c).update(colour=1), "colour"),
    ("tokenizers not list", lambda c: ds(c).update(tokenizers="words"), "tokenizers"),
    ("demo n_images", lambda c: ds(c)["options"].update(n_images=5), "n_images"),
    ("demo image_px", lambda c: ds(c)["options"].update(image_px=8), "image_px"),
    ("demo option unknown", lambda c: ds(c)["options"].update(colour=1), "colour"),
    ("tokenizer kind", lambda c: c["tokenizers"]["words"].update(kind="bpe"), "kind"),
    ("tokenizer max_length", lambda c: c["tokenizers"]["words"].update(max_length=0), "max_length"),
    ("tokenizer min_freq", lambda c: c["tokenizers"]["words"].update(min_freq=0), "min_freq"),
    ("tokenizer hf path", lambda c: c["tokenizers"]["clip-tiny"].pop("path"), "path"),
    ("cnn backbone", lambda c: m(c, "cnn_lstm_demo")["model"].update(backbone="vgg"), "backbone"),
    ("cnn stages", lambda c: m(c, "cnn_lstm_demo")["model"].update(stages=5), "stages"),
    ("cnn embed_dim", lambda c: m(c, "cnn_lstm_demo")["model"].update(embed_dim=0), "embed_dim"),
    ("cnn dropout", lambda c: m(c, "cnn_lstm_demo")["model"].update(dropout=0.95), "dropout"),
    ("cnn pretrained type", lambda c: m(c, "cnn_lstm_demo")["model"].update(pretrained="yes"), "pretrained"),
    ("clip unfreeze_last", lambda c: m(c, "clip_demo")["model"].update(unfreeze_last=-1), "unfreeze_last"),
    ("clip hidden_dim", lambda c: m(c, "clip_demo")["model"].update(hidden_dim=0), "hidden_dim"),
    ("clip dropout", lambda c: m(c, "clip_demo")["model"].update(dropout=1.0), "dropout"),
    ("train epochs", lambda c: m(c, "cnn_lstm_demo")["train"].update(epochs=0), "epochs"),
    ("train lr", lambda c: m(c, "cnn_lstm_demo")["train"].update(lr=-1), "lr"),
    ("train warmup", lambda c: m(c, "cnn_lstm_demo")["train"].update(warmup=2), "warmup"),
    ("train precision", lambda c: m(c, "cnn_lstm_demo")["train"].update(precision="int8"), "precision"),
    ("train workers", lambda c: m(c, "cnn_lstm_demo")["train"].update(workers=-1), "workers"),
    ("train label_smoothing", lambda c: m(c, "cnn_lstm_demo")["train"].update(label_smoothing=1.5), "label_smoothing"),
    ("augment crop_scale", lambda c: m(c, "cnn_lstm_demo")["train"].setdefault("augment", {}).update(crop_scale=0.01), "crop_scale"),
    ("augment rotation", lambda c: m(c, "cnn_lstm_demo")["train"].setdefault("augment", {}).update(rotation=200), "rotation"),
    ("flamingo cross_attn_every", lambda c: m(c, "flamingo_demo")["model"].update(cross_attn_every=0), "cross_attn_every"),
    ("flamingo num_latents", lambda c: m(c, "flamingo_demo")["model"].update(num_latents=0), "num_latents"),
    ("flamingo answer_head", lambda c: m(c, "flamingo_demo")["model"].update(answer_head="both"), "answer_head"),
    ("flamingo max_prompt_tokens", lambda c: m(c, "flamingo_demo")["model"].update(max_prompt_tokens=0), "max_prompt_tokens"),
    ("flamingo classifier_weight", lambda c: m(c, "flamingo_classify_demo")["model"].update(classifier_weight=-1), "classifier_weight"),
    ("blip task", lambda c: m(c, "blip_demo")["model"].update(task="vqa2"), "task"),
    ("blip max_question_tokens", lambda c: m(c, "blip_demo")["model"].update(max_question_tokens=1), "max_question_tokens"),
    ("vlm lora_r", lambda c: m(c, "qwen2_vl_lora_demo")["model"].update(lora_r=0), "lora_r"),
    ("vlm lora_dropout", lambda c: m(c, "qwen2_vl_lora_demo")["model"].update(lora_dropout=2), "lora_dropout"),
    ("vlm quantization", lambda c: m(c, "qwen2_vl_lora_demo")["model"].update(quantization="8bit"), "quantization"),
    ("vlm attn", lambda c: m(c, "qwen2_vl_lora_demo")["model"].update(attn_implementation="flash"), "attn_implementation"),
    ("vlm min_pixels", lambda c: m(c, "qwen2_vl_lora_demo")["model"].update(min_pixels=100), "min_pixels"),
    ("vlm dtype", lambda c: m(c, "qwen2_vl_lora_demo")["model"].update(dtype="int8"), "dtype"),
    ("generate batch_size", lambda c: m(c, "qwen2_vl_lora_demo")["generate"].update(batch_size=0), "batch_size"),
    ("generate num_beams", lambda c: m(c, "qwen2_vl_lora_demo")["generate"].update(num_beams=0), "num_beams"),
    ("generate top_p", lambda c: m(c, "qwen2_vl_lora_demo")["generate"].update(top_p=1.5), "top_p"),
    ("generate temperature", lambda c: m(c, "qwen2_vl_lora_demo")["generate"].update(temperature=0), "temperature"),
    ("generate confidence", lambda c: m(c, "qwen2_vl_lora_demo")["generate"].update(confidence="max"), "confidence"),
    ("generate answer_prob_from", lambda c: m(c, "qwen2_vl_lora_demo")["generate"].update(answer_prob_from="x"), "answer_prob_from"),
    ("generate num_samples", lambda c: m(c, "flamingo_demo")["generate"].update(num_samples=-1), "num_samples"),
    ("caption chunk_size", lambda c: m(c, "blip_caption_zs")["caption"].update(chunk_size=0), "chunk_size"),
    ("caption top_k", lambda c: m(c, "blip_caption_zs")["caption"].update(top_k=-1), "top_k"),
    ("caption dtype", lambda c: m(c, "blip_caption_zs")["caption"].update(dtype="x"), "dtype"),
    ("caption max_pixels", lambda c: m(c, "qwen2_vl_zero_shot_demo")["caption"].update(max_pixels=10), "max_pixels"),
    ("shards type", lambda c: m(c, "blip_demo").update(shards="two"), "shards"),
    ("model entry unknown key", lambda c: m(c, "blip_demo").update(colour=1), "colour"),
    ("pretrained kind", lambda c: c["pretrained"]["clip-tiny"].update(kind="vit"), "kind"),
    ("pretrained seed missing", lambda c: c["pretrained"]["clip-tiny"].pop("seed"), "seed"),
    ("pretrained unknown key", lambda c: c["pretrained"]["clip-tiny"].update(colour=1), "colour"),
    ("pretrained text_from empty", lambda c: c["pretrained"]["clip-gpt2-tiny"].update(text_from=[]), "text_from"),
    ("tiny clip vocab", lambda c: c["pretrained"]["clip-tiny"].setdefault("model", {}).update(vocab_size=100), "vocab_size"),
    ("tiny vlm image_size", lambda c: c["pretrained"]["qwen2-vl-tiny"].setdefault("model", {}).update(image_size=14), "image_size"),
    ("tiny vlm initializer_range", lambda c: c["pretrained"]["qwen2-vl-tiny"].setdefault("model", {}).update(initializer_range=0), "initializer_range"),
    ("predict batch_size", lambda c: c.setdefault("predict", {}).update(batch_size=0), "batch_size"),
    ("predict precision", lambda c: c.setdefault("predict", {}).update(precision="int8"), "precision"),
    ("predict unknown", lambda c: c.setdefault("predict", {}).update(colour=1), "colour"),
    ("evaluate n_bins", lambda c: c.setdefault("evaluate", {}).update(n_bins=0), "n_bins"),
    ("evaluate bootstrap_resamples", lambda c: c.setdefault("evaluate", {}).update(bootstrap_resamples=10), "bootstrap_resamples"),
    ("evaluate ci_level", lambda c: c.setdefault("evaluate", {}).update(ci_level=0.2), "ci_level"),
    ("evaluate bleu_smoothing", lambda c: c.setdefault("evaluate", {}).update(bleu_smoothing="method9"), "bleu_smoothing"),
    ("evaluate bleu_max_order", lambda c: c.setdefault("evaluate", {}).update(bleu_max_order=5), "bleu_max_order"),
    ("evaluate unit", lambda c: c.setdefault("evaluate", {}).update(bootstrap_unit="patient"), "bootstrap_unit"),
    ("evaluate calibration_protocol", lambda c: c.setdefault("evaluate", {}).update(calibration_protocol="x"), "calibration_protocol"),
    ("evaluate caption_protocols dup", lambda c: c.setdefault("evaluate", {}).update(caption_protocols=["coco", "coco"]), "caption_protocols"),
    ("evaluate caption_protocols bad", lambda c: c.setdefault("evaluate", {}).update(caption_protocols=["spice"]), "caption_protocols"),
    ("evaluate ptb", lambda c: c.setdefault("evaluate", {}).update(ptb_tokenizer="nltk"), "ptb_tokenizer"),
    ("evaluate embedding_batch_size", lambda c: c.setdefault("evaluate", {}).update(embedding_batch_size=0), "embedding_batch_size"),
    ("candidates dataset", lambda c: c.setdefault("evaluate", {}).update(llava_med_candidates={"vqarad": str(REPO / "README.md")}), "llava_med_candidates.vqarad"),
    ("candidates caption", lambda c: c.setdefault("evaluate", {}).update(llava_med_candidates={"demo_captions": str(REPO / "README.md")}), "llava_med_candidates.demo_captions"),
    ("candidates file", lambda c: c.setdefault("evaluate", {}).update(llava_med_candidates={"demo": "no/such.json"}), "llava_med_candidates.demo"),
    ("candidates type", lambda c: c.setdefault("evaluate", {}).update(llava_med_candidates=["demo"]), "llava_med_candidates"),
    ("report splits", lambda c: c["report"].update(splits=["dev"]), "splits"),
    ("report unknown", lambda c: c["report"].update(colour=1), "colour"),
    ("figures metric", lambda c: c["report"]["figures"].update(metric="x"), "metric"),
    ("figures dpi", lambda c: c["report"]["figures"].update(dpi=10), "dpi"),
    ("published protocol", lambda c: c["report"].update(published=[dict(dataset="demo", source="x", protocol="nope", metric="em_overall", value=1)]), "protocol"),
    ("published metric", lambda c: c["report"].update(published=[dict(dataset="demo", source="x", protocol="exact_match", metric="nope", value=1)]), "metric"),
    ("published source empty", lambda c: c["report"].update(published=[dict(dataset="demo", source="", protocol="exact_match", metric="em_overall", value=1)]), "source"),
    ("published value type", lambda c: c["report"].update(published=[dict(dataset="demo", source="x", protocol="exact_match", metric="em_overall", value="high")]), "value"),
    ("experiment seeds", lambda c: c["experiments"][0].update(seeds=["a"]), "seeds"),
    ("experiment question_types", lambda c: c["experiments"][0].update(question_types=["yesno"]), "question_types"),
    ("experiment subsamples", lambda c: c["experiments"][0].update(subsamples=[0]), "subsamples"),
    ("experiment leakage", lambda c: c["experiments"][0].update(leakage=["remove"]), "leakage"),
    ("experiment unknown", lambda c: c["experiments"][0].update(colour=1), "colour"),
    ("experiment models empty", lambda c: c["experiments"][0].update(models=[]), "models"),
]


@pytest.mark.parametrize("rule, edit, key", VALUE_RULES, ids=[rule for rule, _, _ in VALUE_RULES])
def test_every_value_rule_is_checked_by_the_specs_naming_the_key(rule, edit, key):
    config = copy.deepcopy(default_config())
    edit(config)
    with pytest.raises(ConfigError) as error:
        check_structure(config, SCHEMA)
        expand_experiments(config)
        check_config(config)
        check_pretrained(config)  # rules/pretrained.smk: the tiny stand-ins' entries
    message = str(error.value)
    assert key in message and "\n" not in message, message


def test_the_schema_holds_structure_and_types_only():
    """Ranges and choices live once, in the specs: none in the schema (only the entry-name pattern)."""
    text = SCHEMA.read_text()
    for word in ("enum", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "const", "minLength"):
        assert f"{word}:" not in text, word
    assert text.count("pattern:") == 1


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


def test_zero_shot_means_no_train_block_for_every_family():
    """No train: block = the checkpoint as loaded, on VQA and caption data alike; families with untrained
    layers need the block, and model.finetune (the old vlm_sft switch) is refused by name."""
    config = _with_experiment(["demo"], ["blip_vqa_zs"])
    config["models"]["blip_vqa_zs"] = {key: value for key, value in config["models"]["blip_demo"].items() if key != "train"}
    check_config(config)  # zero-shot BLIP VQA
    assert targets.is_zero_shot(config["models"]["blip_vqa_zs"]) and not targets.trains(config, "blip_vqa_zs")
    for name in ("cnn_lstm_demo", "clip_demo", "flamingo_demo"):
        broken = copy.deepcopy(default_config())
        del broken["models"][name]["train"]
        family = broken["models"][name]["family"]
        with pytest.raises(ConfigError, match=rf"^models\.{name}: no train: block, but family {family} has untrained "
                                              r"layers and cannot be used zero-shot \(families that can: blip, "
                                              r"vlm_sft\); add a train: block \(train: \{\} for the defaults\)$"):
            check_config(broken)
    broken = copy.deepcopy(default_config())
    broken["models"]["qwen2_vl_zero_shot_demo"]["model"]["finetune"] = False
    with pytest.raises(ConfigError, match=r"^models\.qwen2_vl_zero_shot_demo\.model\.finetune: not a key; an entry "
                                          r"without a train: block is zero-shot"):
        check_config(broken)


def test_flamingo_captions_only_once_trained_and_tokenizer_texts_must_exist():
    config = copy.deepcopy(default_config())
    del config["models"]["flamingo_caption_demo"]["train"]
    with pytest.raises(ConfigError, match=r"models\.flamingo_caption_demo: no train: block, but family flamingo has "
                                          r"untrained layers"):
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


def test_the_default_config_is_read_in_one_sitting():
    """Issue 10: at most 200 lines, and every line that sets a value says what it means."""
    lines = (REPO / "config.yaml").read_text().splitlines()
    assert len(lines) <= 200
    value = re.compile(r"^\s*(- )?[\w.-]+:\s*(?!&\w+\s*$)(?!$)\S")  # key: value (not a block, not an anchor alone)
    uncommented = [f"{i}: {line}" for i, line in enumerate(lines, 1) if value.match(line) and "#" not in line]
    assert not uncommented, "\n".join(uncommented)
