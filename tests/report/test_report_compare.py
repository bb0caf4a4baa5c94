"""Pairwise McNemar between models and the mean ± std over seeds."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import t as student_t

from medvqa.evaluate.compare import compare_correctness, compare_models, holm
from medvqa.evaluate.seeds import aggregate_metrics
from medvqa.evaluate.stats import aggregate_seeds, mcnemar


def test_comparison_equals_mcnemar_on_constructed_vectors(results_tree, tmp_path):
    root, info = results_tree
    runs = [["cnn", 0], ["cnn", 1], ["clip", 0]]
    preds = [root / f"results/predictions/vqa/{m}/{s}/test.parquet" for m, s in runs]
    data = root / "results/data/vqa/test.parquet"
    result = compare_models(data, runs, preds, tmp_path / "m.json", tmp_path / "m.csv")
    assert json.loads((tmp_path / "m.json").read_text()) == result
    (pair,) = result["pairs"]  # cnn and clip share only seed 0; seeds of one model are not compared
    expected = mcnemar(info["vectors"][("cnn", 0)], info["vectors"][("clip", 0)])
    assert (pair["model_a"], pair["model_b"], pair["seed"]) == ("cnn", "clip", 0)
    assert {k: pair[k] for k in ("n", "b", "c", "p_value")} == {k: expected[k] for k in ("n", "b", "c", "p_value")}
    assert pair["accuracy_a"] == np.mean(info["vectors"][("cnn", 0)])
    assert pair["p_holm"] == pair["p_value"]  # one test: nothing to adjust
    csv = pd.read_csv(tmp_path / "m.csv")
    assert csv.loc[0, "b"] == expected["b"] and csv.loc[0, "p_value"] == expected["p_value"]


def test_pairs_in_config_order_with_holm_adjustment():
    ids = [f"q{i}" for i in range(40)]
    rng = np.random.default_rng(5)
    vectors = {("a", 0): rng.random(40) < 0.9, ("b", 0): rng.random(40) < 0.3, ("c", 0): rng.random(40) < 0.5}
    correct = {key: pd.Series(v, index=ids) for key, v in vectors.items()}
    rows = compare_correctness(correct)
    assert [(r["model_a"], r["model_b"]) for r in rows] == [("a", "b"), ("a", "c"), ("b", "c")]
    for row in rows:
        expected = mcnemar(vectors[(row["model_a"], 0)], vectors[(row["model_b"], 0)])
        assert (row["b"], row["c"], row["p_value"]) == (expected["b"], expected["c"], expected["p_value"])
    assert [r["p_holm"] for r in rows] == holm([r["p_value"] for r in rows])


def test_comparison_aligns_question_ids():
    a = pd.Series([True, False, True], index=["q1", "q2", "q3"])
    b = pd.Series([True, True, False], index=["q3", "q2", "q1"])  # same ids, other order
    (row,) = compare_correctness({("a", 0): a, ("b", 0): b})
    expected = mcnemar([True, False, True], [False, True, True])
    assert (row["b"], row["c"]) == (expected["b"], expected["c"]) == (1, 1)
    with pytest.raises(ValueError, match="different question ids"):
        compare_correctness({("a", 0): a, ("b", 0): pd.Series([True], index=["q9"])})


def test_holm_by_hand():
    # sorted 0.01, 0.02, 0.04 → x3, x2, x1 = 0.03, 0.04, 0.04 (running max), back in input order
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5, 0.6]) == [1.0, 1.0]
    assert holm([]) == []


def test_seed_aggregate_equals_the_library(results_tree, tmp_path):
    root, info = results_tree
    paths = [root / f"results/metrics/vqa/cnn/{s}/test.json" for s in (0, 1)]
    out = aggregate_metrics(paths, [0, 1], tmp_path / "s.json")
    assert out == json.loads((tmp_path / "s.json").read_text())
    em = out["metrics"]["accuracy"]["exact_match"]["overall"]["value"]
    values = [info["metrics"][("cnn", s)]["accuracy"]["exact_match"]["overall"]["value"] for s in (0, 1)]
    mean, std = float(np.mean(values)), float(np.std(values, ddof=1))
    # The interval over seeds is the Student t interval of the two per-seed values (scipy's t quantile).
    half = student_t.ppf(0.975, 1) * std / np.sqrt(2)
    assert em == {"mean": mean, "std": std, "n": 2, "ci_low": pytest.approx(mean - half), "ci_high": pytest.approx(mean + half)}
    assert "Student t" in out["seed_interval"]
    parts = [{k: v for k, v in info["metrics"][("cnn", s)].items() if k not in ("task", "protocol", "inputs", "spec")}
             for s in (0, 1)]
    expected = aggregate_seeds(parts)["calibration"]["confidence"]["ece"]
    assert out["metrics"]["calibration"]["confidence"]["ece"] == expected
    assert out["seeds"] == [0, 1] and out["protocol"] == info["metrics"][("cnn", 0)]["protocol"]
    assert "spec" not in out["metrics"]


def test_one_seed_has_null_std(results_tree, tmp_path):
    root, _ = results_tree
    out = aggregate_metrics([root / "results/metrics/vqa/clip/0/test.json"], [0], tmp_path / "s.json")
    assert out["metrics"]["accuracy"]["exact_match"]["overall"]["value"]["std"] is None


def test_command_line_writes_the_same_files(results_tree, tmp_path):
    from medvqa.report.__main__ import main

    root, info = results_tree
    res = root / "results"
    main(["mcnemar", "--data", str(res / "data/vqa/test.parquet"),
          "--run", "cnn", "0", str(res / "predictions/vqa/cnn/0/test.parquet"),
          "--run", "clip", "0", str(res / "predictions/vqa/clip/0/test.parquet"), "--out", str(tmp_path / "m")])
    (pair,) = json.loads((tmp_path / "m.json").read_text())["pairs"]
    assert pair["b"] == mcnemar(info["vectors"][("cnn", 0)], info["vectors"][("clip", 0)])["b"]
    main(["table", "--dataset", "vqa", "--run", "clip", "0", str(res / "metrics/vqa/clip/0/test.json"),
          "--out", str(tmp_path / "t")])
    assert all((tmp_path / f"t.{fmt}").exists() for fmt in ("csv", "md", "tex", "html"))
    main(["curves", "--history", "seed 0", str(res / "models/vqa/cnn/0/history.csv"),
          "--png", str(tmp_path / "c.png"), "--pdf", str(tmp_path / "c.pdf"), "--spec", '{"dpi": 50}'])
    assert (tmp_path / "c.png").stat().st_size > 0
