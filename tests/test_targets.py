"""medvqa.paths, medvqa.targets and medvqa.job_inputs: the path grammar (derived views included),
the workflow's target lists and each job's inputs, on small configs written out here and on the
repository's example configs (rules/common.smk only adapts these to Snakemake's wildcards)."""

import copy
import subprocess
import sys
from pathlib import Path

import yaml

from medvqa import job_inputs, paths, targets
from medvqa.models.batch import SplitPaths
from medvqa.training.train import TrainPaths
from medvqa.config_files import expand_experiments

REPO = Path(__file__).resolve().parents[1]

TOY = {
    "datasets": {
        "v": {"task": "vqa", "image_size": 32, "tokenizers": ["w"],
              "filters": {"question_type": "all", "subsample": None}},
        "c": {"task": "caption", "image_size": 16},
    },
    "tokenizers": {"w": {"kind": "words"}},
    "models": {
        "cnn": {"family": "cnn_lstm", "tokenizer": "w", "train": {}},
        "zs": {"family": "vlm_sft", "model": {"checkpoint": "results/pretrained/tiny"},
               "caption": {}},
    },
    "pretrained": {"tiny": {"dataset": "v"}},
    "experiments": [
        {"datasets": ["v"], "models": ["cnn"], "seeds": [0, 1]},
        {"datasets": ["c"], "models": ["zs"]},
    ],
    "report": {"splits": ["test"], "published": [{"dataset": "v", "split": "test"}]},
}


def toy(**experiment_grid):
    config = copy.deepcopy(TOY)
    config["experiments"][0].update(experiment_grid)
    expand_experiments(config)
    return config


def test_experiment_runs_are_unique_and_in_config_order():
    config = toy()
    config["experiments"].append({"datasets": ["v"], "models": ["cnn"], "seeds": [1, 2]})
    assert targets.experiment_runs(config) == [("v", "cnn", 0), ("v", "cnn", 1), ("c", "zs", 0), ("v", "cnn", 2)]
    assert targets.model_seeds(config, "v", "cnn") == [0, 1, 2]


def test_data_targets_of_each_dataset():
    assert targets.data_targets(toy()) == [
        "results/data/v/summary.json", "results/data/v/leakage.json", "results/data/v/answers.json",
        "results/data/v/images_32.train.npy", "results/data/v/images_32.val.npy", "results/data/v/images_32.test.npy",
        "results/data/v/tokens/w.train.parquet", "results/data/v/tokens/w.val.parquet",
        "results/data/v/tokens/w.test.parquet",
        "results/data/c/summary.json", "results/data/c/leakage.json",
        "results/data/c/images_16.train.npy", "results/data/c/images_16.val.npy", "results/data/c/images_16.test.npy",
    ]


def test_evaluate_targets_cover_runs_seeds_baselines_and_mcnemar():
    got = targets.evaluate_targets(toy())
    assert got[:4] == ["results/metrics/v/cnn/0/test.json", "results/metrics/v/cnn/test.seeds.json",
                       "results/metrics/v/cnn/1/test.json", "results/metrics/c/zs/0/test.json"]
    assert "results/metrics/v/mcnemar.test.json" in got and "results/metrics/c/mcnemar.test.json" not in got
    assert "results/metrics/v/baseline-majority/0/test.json" in got
    assert "results/metrics/c/baseline-nearest-caption/0/test.json" in got
    assert len(got) == len(set(got))


def test_figure_targets_follow_the_family_and_task():
    got = targets.figure_targets(toy())
    assert "results/figures/v/cnn/curves.png" in got  # trained
    assert "results/figures/v/cnn/1/attention.test.png" in got  # cnn_lstm draws attention maps
    assert "results/figures/c/zs/0/gallery.test.png" in got and "results/figures/c/zs/curves.png" not in got
    assert "results/tables/v/published.test.csv" in got and "results/tables/c/published.test.csv" not in got
    assert "results/tables/v/mcnemar.test.html" in got and "results/tables/c/mcnemar.test.html" not in got


def test_caption_targets_only_caption_runs_on_caption_datasets():
    assert targets.caption_targets(toy()) == ["results/captions/c/zs/0/test.parquet"]


def test_clean_view_reads_its_base_and_is_scored_by_its_twins_runs():
    config = toy(leakage=["keep", "drop"])
    assert config["experiments"][0]["datasets"] == ["v", "v-clean"]
    assert paths.source_split(config, "v-clean", "val") == "results/data/v/source/val.parquet"
    assert paths.image_cache(config, "v-clean", "test")["images"] == "results/data/v/images_32.test.npy"
    assert paths.scoring_run_dir(config, "v-clean", "cnn", 0) == "results/models/v/cnn/0"
    w = {"dataset": "v-clean", "model": "cnn", "seed": "1", "split": "test"}
    assert job_inputs.predict_inputs(config, w)["weights"] == "results/models/v/cnn/1/best.safetensors"
    assert job_inputs.predict_inputs(config, w)["test_tokens"] == "results/data/v-clean/tokens/w.test.parquet"
    assert job_inputs.leakage_filter_input(config, w) == {"leakage": "results/data/v/leakage.json"}
    assert targets.leakage_targets(config) == [
        "results/figures/v/leakage.png", "results/tables/v/leakage.csv",
        "results/figures/c/leakage.png", "results/tables/c/leakage.csv",
        "results/data/v-clean/summary.json", "results/tables/v-clean/clean_vs_original.test.csv",
    ]
    assert job_inputs.original_metrics(config, w) == ["results/metrics/v/cnn/0/test.json",
                                                       "results/metrics/v/cnn/1/test.json"]


def test_llava_med_candidate_file_is_a_score_input_of_its_dataset_and_views():
    config = toy(question_types=["all", "closed"])
    config["evaluate"] = {"llava_med_candidates": {"v": "cands/v.json"}}
    w = {"dataset": "v-closed", "model": "cnn", "seed": "0", "split": "test"}
    assert job_inputs.llava_med_candidates_input(config, w) == {"candidates": "cands/v.json"}
    config["evaluate"]["llava_med_candidates"]["v-closed"] = "cands/closed.json"  # a view's own file wins
    assert job_inputs.llava_med_candidates_input(config, w) == {"candidates": "cands/closed.json"}
    assert job_inputs.llava_med_candidates_input(config, {**w, "dataset": "c"}) == {}
    # The job's scoring spec names its own file only; another dataset's entry is no param of it.
    assert job_inputs.score_params(config, w) == {"llava_med_candidates": {"v-closed": "cands/closed.json"}}
    assert job_inputs.score_params(config, {**w, "dataset": "c"}) == {}


def test_subsample_view_has_its_own_splits_and_its_bases_image_caches():
    config = toy(subsamples=[None, 5])
    assert "v-n5" in config["datasets"] and "v-n5" not in "".join(targets.data_targets(config))
    inputs = paths.train_inputs(config, "v-n5", "cnn")
    assert inputs["train"] == "results/data/v-n5/train.parquet"
    assert inputs["train_images"] == "results/data/v/images_32.train.npy"
    assert inputs["vocab"] == "results/data/v-n5/tokens/w.vocab.json"
    assert inputs["answers"] == "results/data/v-n5/answers.json"
    paths_ = TrainPaths.from_inputs(inputs)  # the names are those the train stage reads
    assert paths_.val == SplitPaths("results/data/v-n5/val.parquet", "results/data/v/images_32.val.npy",
                                    "results/data/v/images_32.val.ids.json", "results/data/v-n5/tokens/w.val.parquet")


def test_zero_shot_predictions_need_no_weights_but_the_built_checkpoint():
    config = toy()
    inputs = job_inputs.predict_inputs(config, {"dataset": "c", "model": "zs", "seed": "0", "split": "test"})
    assert "weights" not in inputs and inputs["state"] == "results/models/c/zs/0/state.json"
    assert inputs["pretrained"] == ["results/pretrained/tiny"]
    assert targets.models_where(config, ["vlm_sft"], zero_shot=True) == ["zs"]
    assert targets.models_where(config, ["vlm_sft", "cnn_lstm"], zero_shot=False) == ["cnn"]


def test_params_are_canonical():
    config = toy()
    config["models"]["zs"]["caption"] = {"max_new_tokens": 8, "batch_size": 2}
    params = job_inputs.caption_params(config, {"model": "zs"})
    assert list(params) == ["batch_size", "checkpoint", "kind", "max_new_tokens"]
    assert params["kind"] == "vlm" and params["checkpoint"] == "results/pretrained/tiny"


def test_example_configs_enumerate_every_experiment():
    # config.yaml: 7 demo + 5 caption runs; grid.yaml and clean.yaml replace its experiments list.
    for extra, runs in (([], 12), (["grid.yaml"], 3 * 2 * 2), (["clean.yaml"], 2)):
        config = yaml.safe_load((REPO / "config.yaml").read_text())
        for name in extra:
            config.update(yaml.safe_load((REPO / "configs" / name).read_text()))
        expand_experiments(config)
        assert len(targets.experiment_runs(config)) == runs, extra
        evaluate = targets.evaluate_targets(config)
        assert all(t.startswith("results/metrics/") for t in evaluate) and len(evaluate) == len(set(evaluate))


def test_paths_and_targets_import_neither_torch_nor_pandas():
    code = "import sys, medvqa.paths; assert 'pandas' not in sys.modules and 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    code = "import sys, medvqa.targets, medvqa.job_inputs; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
