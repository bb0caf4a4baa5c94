"""Experiment grids: question types × subsample sizes become derived dataset views."""

import copy
from pathlib import Path

import yaml

from medvqa.workflow_config import check_config, expand_experiments, source_dataset

REPO = Path(__file__).resolve().parents[2]


def test_grid_expands_into_derived_views_that_share_the_source():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["models"] = {"m": {"family": "cnn_lstm"}}
    config["experiments"] = [
        {"datasets": ["demo"], "models": ["m"], "seeds": [0, 1], "question_types": ["all", "closed"], "subsamples": [None, 500]}
    ]
    before = copy.deepcopy(config["datasets"]["demo"])
    expand_experiments(config)
    assert config["experiments"][0]["datasets"] == ["demo", "demo-n500", "demo-closed", "demo-closed-n500"]
    closed = config["datasets"]["demo-closed-n500"]
    assert closed["filters"]["question_type"] == "closed" and closed["filters"]["subsample"] == 500
    assert closed["filters"]["subsample_seed"] == before["filters"]["subsample_seed"]
    assert source_dataset(config, "demo-closed-n500") == "demo" and source_dataset(config, "demo") == "demo"
    assert config["datasets"]["demo"] == before  # the base view is untouched
    assert "question_types" not in config["experiments"][0]
    check_config({**config, "models": {}, "experiments": []})
