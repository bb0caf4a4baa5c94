"""ECE / MCE against torchmetrics, bin edges by hand, Brier and overconfidence."""

import numpy as np
import pytest
import torch
from torchmetrics.classification import BinaryCalibrationError, MulticlassCalibrationError
from torchmetrics.functional.classification import calibration_error

from medvqa.evaluate import calibration


def _random_top_label(seed, n=2000, classes=7):
    gen = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn(n, classes, generator=gen) * 2, dim=1)
    target = torch.randint(0, classes, (n,), generator=gen)
    # Make the argmax right more often than chance so bins differ.
    target = torch.where(torch.rand(n, generator=gen) < 0.5, probs.argmax(1), target)
    conf, pred = probs.max(1)
    return probs, target, conf.numpy(), (pred == target).numpy().astype(float)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ece_and_mce_equal_torchmetrics_multiclass(seed):
    probs, target, conf, correct = _random_top_label(seed)
    pairs = (("l1", calibration.expected_calibration_error), ("max", calibration.maximum_calibration_error))
    for norm, ours in pairs:
        reference = MulticlassCalibrationError(num_classes=probs.shape[1], n_bins=15, norm=norm)(probs, target)
        assert ours(conf, correct, 15) == pytest.approx(reference.item(), abs=1e-6)


@pytest.mark.parametrize("n_bins", [15, 10])
def test_ece_and_mce_equal_torchmetrics_binary_formulation(n_bins):
    # Top-label calibration is binary calibration of (confidence, correct) pairs.
    rng = np.random.default_rng(n_bins)
    conf = rng.uniform(0, 1, 3000)
    correct = (rng.uniform(0, 1, 3000) < conf**1.5).astype(float)
    c, y = torch.tensor(conf), torch.tensor(correct)
    ece = BinaryCalibrationError(n_bins=n_bins, norm="l1")(c, y).item()
    mce = calibration_error(c, y, task="binary", n_bins=n_bins, norm="max").item()
    assert calibration.expected_calibration_error(conf, correct, n_bins) == pytest.approx(ece, abs=1e-6)
    assert calibration.maximum_calibration_error(conf, correct, n_bins) == pytest.approx(mce, abs=1e-6)


def test_bin_edges_are_right_closed_and_float_robust():
    k = np.arange(1, 16)
    for edges in (k / 15, np.linspace(0, 1, 16)[1:], k * (1 / 15)):
        assert calibration.bin_index(edges, 15).tolist() == list(range(15))
    assert calibration.bin_index(np.array([0.0, 1.0, 0.2, 0.2 + 1e-6]), 15).tolist() == [0, 14, 2, 3]


def test_edge_values_hand_computed():
    conf = np.array([0.0, 1 / 15, 1.0, 0.2])
    correct = np.array([0.0, 1.0, 1.0, 0.0])
    # Bin (0, 1/15] holds 0.0 and 1/15: confidence 1/30, accuracy 1/2; bin 14 holds 1.0 (gap 0);
    # bin (2/15, 3/15] holds 0.2 with accuracy 0.
    expected = 2 / 4 * (0.5 - 1 / 30) + 1 / 4 * 0.2
    assert calibration.expected_calibration_error(conf, correct) == pytest.approx(expected)
    assert calibration.maximum_calibration_error(conf, correct) == pytest.approx(0.5 - 1 / 30)


def test_report_brier_overconfidence_and_missing_confidence():
    conf = np.array([0.9, 0.8, 0.6, np.nan])
    correct = np.array([1.0, 0.0, 0.0, 1.0])
    report = calibration.calibration_report(conf, correct, 15)
    assert report["n"] == 3 and report["n_missing_confidence"] == 1
    assert report["brier"] == pytest.approx((0.01 + 0.64 + 0.36) / 3)
    assert report["mean_confidence_wrong"] == pytest.approx(0.7)
    assert report["overconfidence_gap"] == pytest.approx(np.mean([0.9, 0.8, 0.6]) - 1 / 3)
    assert sum(b["count"] for b in report["bins"]) == 3 and len(report["bins"]) == 15


def test_perfect_confident_model_has_zero_error_and_no_wrong_answers():
    report = calibration.calibration_report(np.ones(5), np.ones(5), 15)
    assert report["ece"] == 0.0 and report["mce"] == 0.0 and report["brier"] == 0.0
    assert np.isnan(report["mean_confidence_wrong"])


def test_empty_and_out_of_range_confidence():
    report = calibration.calibration_report(np.array([]), np.array([]), 15)
    assert report["n"] == 0 and np.isnan(report["ece"]) and np.isnan(report["mce"])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        calibration.calibration_report(np.array([1.2]), np.array([1.0]), 15)


def test_sampled_agreement_normalises_and_handles_missing_samples():
    preds = ["Yes", "left lung", "x", "y"]
    samples = [["yes", "yes.", "no", "YES"], ["the left lung", "right lung"], [], None]
    out = calibration.sampled_agreement(preds, samples)
    assert out[:2].tolist() == [0.75, 0.5] and np.isnan(out[2:]).all()
