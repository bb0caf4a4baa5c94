"""Figure functions on a fake results tree: PNG + PDF written, right size, not blank."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medvqa.data.images import build_image_cache
from medvqa.evaluate.calibration import calibration_report, reliability_bins
from medvqa.report.attention import AttentionInputs, attention_rows, plot_attention_maps, upsample
from medvqa.report.bars import _top, metric_groups, plot_model_comparison
from medvqa.report.collect import Cell, Run, summarise_seeds
from medvqa.report.curves import best_epoch, plot_training_curves, read_history
from medvqa.report.figures import fixed_sample
from medvqa.report.gallery import gallery_rows, plot_caption_gallery
from medvqa.report.reliability import bins_as_arrays, plot_reliability
from medvqa.report.spec import FigureSpec
from medvqa.spec import ConfigError

DPI = 60
SPEC = FigureSpec(dpi=DPI, gallery_size=3, attention_size=5)


def check_figure(png, pdf, width_in=None, height_in=None):
    """Both files exist; the PNG opens, has the expected size and is not blank; the PDF is a PDF."""
    with Image.open(png) as image:
        assert image.format == "PNG"
        pixels = np.asarray(image.convert("L"), dtype=float)
        if width_in is not None:
            assert image.size[0] == round(width_in * DPI)
        if height_in is not None:
            assert image.size[1] == round(height_in * DPI)
    assert pixels.std() > 5, "the figure is blank"
    assert (pixels < 200).mean() > 0.005, "almost nothing is drawn"
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and b"%%EOF" in data[-64:]


def test_training_curves_mark_the_best_epoch(results_tree, tmp_path):
    root, _ = results_tree
    paths = {f"seed {s}": root / f"results/models/vqa/cnn/{s}/history.csv" for s in (0, 1)}
    assert [best_epoch(read_history(p)) for p in paths.values()] == [3, 4]
    plot_training_curves(paths, tmp_path / "c.png", tmp_path / "c.pdf", SPEC, "cnn on vqa")
    check_figure(tmp_path / "c.png", tmp_path / "c.pdf", 11, 4.2)


def test_history_aliases_and_loss_only_history(tmp_path):
    pd.DataFrame({"epoch": [2, 1, 3], "train_loss": [1.0, 2.0, 0.5], "val_loss": [0.9, 1.5, 1.0]}).to_csv(
        tmp_path / "h.csv", index=False)
    history = read_history(tmp_path / "h.csv")
    assert list(history["epoch"]) == [1, 2, 3] and history["val_accuracy"].isna().all()
    assert best_epoch(history) == 2  # no accuracy: lowest validation loss
    aliased = pd.DataFrame({"epoch": [1, 2], "val_acc": [0.5, 0.4], "train_acc": [0.1, 0.2]})
    aliased.to_csv(tmp_path / "a.csv", index=False)
    assert best_epoch(read_history(tmp_path / "a.csv")) == 1
    plot_training_curves({"run": tmp_path / "h.csv"}, tmp_path / "c.png", tmp_path / "c.pdf", SPEC)
    check_figure(tmp_path / "c.png", tmp_path / "c.pdf")


def test_reliability_diagram_from_metrics_json(results_tree, tmp_path):
    root, info = results_tree
    metrics = info["metrics"][("cnn", 0)]
    assert metrics["calibration"]["confidence"]["ece"] > 0
    plot_reliability(root / "results/metrics/vqa/cnn/0/test.json", tmp_path / "r.png", tmp_path / "r.pdf", SPEC)
    check_figure(tmp_path / "r.png", tmp_path / "r.pdf", 4.6, 5.6)


def test_reliability_bins_from_json_equal_the_library_bins():
    rng = np.random.default_rng(0)
    conf, correct = rng.random(200), rng.random(200) < 0.6
    report = calibration_report(conf, correct, 10)
    from_json = bins_as_arrays(json.loads(json.dumps(report["bins"]).replace("NaN", "null")))
    direct = reliability_bins(conf, correct, 10)
    for key in direct:
        np.testing.assert_allclose(from_json[key], direct[key], equal_nan=True)


def test_reliability_without_confidence_says_so(tmp_path):
    plot_reliability({"task": "vqa", "calibration": {"confidence": None}}, tmp_path / "r.png", tmp_path / "r.pdf", SPEC)
    check_figure(tmp_path / "r.png", tmp_path / "r.pdf")


def test_comparison_bars_vqa_and_captions(results_tree, tmp_path):
    _, info = results_tree
    runs = [Run(m, s, info["metrics"][(m, s)]) for m, s in (("cnn", 0), ("cnn", 1), ("clip", 0))]
    plot_model_comparison(runs, tmp_path / "b.png", tmp_path / "b.pdf", SPEC, "vqa/test")
    check_figure(tmp_path / "b.png", tmp_path / "b.pdf", 6, 4.5)
    captions = [Run("capm", 0, info["metrics"][("capm", 0)])]
    plot_model_comparison(captions, tmp_path / "c.png", tmp_path / "c.pdf", FigureSpec(dpi=DPI, metric="llava_med"))
    check_figure(tmp_path / "c.png", tmp_path / "c.pdf")


def test_caption_bars_include_cider_and_the_axis_grows_past_100(results_tree):
    _, info = results_tree
    groups = dict(metric_groups("caption", "exact_match"))
    assert groups["CIDEr-D"] == ("coco", "cider_d")
    run = Run("capm", 0, info["metrics"][("capm", 0)])
    cell = summarise_seeds([run], groups["CIDEr-D"])
    assert cell.value == info["metrics"][("capm", 0)]["coco"]["cider_d"]["value"]
    big = Cell(3.31, 2.9, 3.7, float("nan"), 1, 45, (3.31,))  # CIDEr-D 331 %, as the demo's BLIP
    assert _top([[big, None], [cell]]) == pytest.approx(370.0)


def test_caption_gallery_shows_a_fixed_sample(results_tree, tmp_path):
    root, _ = results_tree
    data, captions = root / "results/data/cap/test.parquet", root / "results/captions/cap/capm/0/test.parquet"
    rows = gallery_rows(data, captions, 3, 0)
    assert len(rows) == 3 and list(rows["image_id"]) == fixed_sample([f"c{k}" for k in range(6)], 3, 0)
    if "c0" in set(rows["image_id"]):
        assert len(rows.set_index("image_id").loc["c0", "references"]) == 2
    plot_caption_gallery(data, captions, tmp_path / "g.png", tmp_path / "g.pdf", SPEC)
    check_figure(tmp_path / "g.png", tmp_path / "g.pdf", 11, 1.8 * 3 + 0.5)


def attention_inputs(root, model="cnn", seed=0):
    res = root / "results"
    pred = res / f"predictions/vqa/{model}/{seed}/test"
    images = res / "data/vqa/images_16.test"
    return AttentionInputs(f"{pred}.attention.npy", f"{pred}.attention.ids.json", res / "data/vqa/test.parquet",
                           f"{pred}.parquet", f"{images}.npy", f"{images}.ids.json")


def test_attention_maps_pick_the_right_rows(results_tree, tmp_path):
    root, info = results_tree
    inputs = attention_inputs(root)
    rows, maps, images = attention_rows(inputs, 5, 0)
    data = info["data"].set_index("question_id")
    all_maps = np.load(inputs.attention)
    ids = json.loads(open(inputs.attention_ids).read())
    cache, image_ids = np.load(inputs.images), json.loads(open(inputs.image_ids).read())
    assert list(rows["question_id"]) == fixed_sample(ids, 5, 0)
    for i, q in enumerate(rows["question_id"]):
        np.testing.assert_array_equal(maps[i], all_maps[ids.index(q)])
        np.testing.assert_array_equal(images[i], cache[image_ids.index(data.loc[q, "image_id"])])
        assert rows["answer"][i] == data.loc[q, "answer"]
    plot_attention_maps(inputs, tmp_path / "a.png", tmp_path / "a.pdf", SPEC)
    check_figure(tmp_path / "a.png", tmp_path / "a.pdf", 3.2 * 4, 4.2 * 2)
    # A raw cache built from the split, and image_cache none (the split itself): the same images.
    raw = tmp_path / "images_16.test"
    build_image_cache(inputs.data, 16, f"{raw}.npy", f"{raw}.ids.json")
    built = attention_rows(dataclasses.replace(inputs, images=f"{raw}.npy", image_ids=f"{raw}.ids.json"), 5, 0)[2]
    none = dataclasses.replace(inputs, images=inputs.data, image_ids=inputs.data, image_size=16)
    np.testing.assert_array_equal(attention_rows(none, 5, 0)[2], built)


def test_upsample_keeps_the_peak_where_it_was():
    weights = np.full((4, 4), 0.01, dtype=np.float32)
    weights[0, 3] = 0.85
    big = upsample(weights, 32, 32)
    assert big.shape == (32, 32) and big.min() == 0.0 and big.max() == 1.0
    row, col = np.unravel_index(big.argmax(), big.shape)
    assert row < 8 and col >= 24


def test_fixed_sample_ignores_order_and_duplicates():
    ids = [f"q{i}" for i in range(50)]
    assert fixed_sample(ids, 5, 3) == fixed_sample(list(reversed(ids)) + ids[:10], 5, 3)
    assert fixed_sample(ids, 5, 3) != fixed_sample(ids, 5, 4)
    assert fixed_sample(ids[:3], 5, 0) == sorted(ids[:3])


def test_figure_spec_rejects_bad_keys():
    with pytest.raises(ConfigError, match="gallery_sise"):
        FigureSpec.from_mapping({"gallery_sise": 4})
    with pytest.raises(ConfigError, match="metric"):
        FigureSpec.from_mapping({"metric": "bleu"})
