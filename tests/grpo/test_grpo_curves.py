"""The training-curves figure of a GRPO run: reward (total and per reward function), KL, completion length."""

from __future__ import annotations

import pandas as pd
from PIL import Image

from medvqa.report.curves import GRPO_PANELS, plot_training_curves
from medvqa.report.spec import FigureSpec
from medvqa.training.grpo import history_columns
from medvqa.training.spec import GrpoSpec


def test_grpo_history_is_drawn_per_step(tmp_path):
    spec = GrpoSpec(rewards={"correctness": 1.0, "format": 0.2})
    steps = [1, 2, 3, 4]
    history = pd.DataFrame({
        "step": steps, "epoch": [0.25, 0.5, 0.75, 1.0], "reward": [0.2, 0.3, 0.35, 0.5], "reward_std": 0.1,
        "reward_correctness": [0.1, 0.2, 0.3, 0.4], "reward_correctness_std": 0.2, "reward_format": [0.5, 0.9, 1, 1],
        "reward_format_std": 0.1, "kl": [0, 0.1, 0.2, 0.2], "completion_length": [6, 5, 3, 2], "loss": 0.0,
        "lr": 1e-3, "seconds": 0.3,
    })[list(history_columns(spec))]
    history.to_csv(tmp_path / "h.csv", index=False)
    fig = plot_training_curves({"seed 0": tmp_path / "h.csv"}, tmp_path / "c.png", tmp_path / "c.pdf",
                               FigureSpec(dpi=50), "grpo")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [label for _, label in GRPO_PANELS]
    reward_lines = [line.get_label() for line in fig.axes[0].get_lines()]
    assert reward_lines == ["seed 0 mean reward", "seed 0 correctness", "seed 0 format"]
    assert list(fig.axes[1].get_lines()[0].get_ydata()) == [0, 0.1, 0.2, 0.2]
    with Image.open(tmp_path / "c.png") as png:
        assert png.size == (5.5 * 3 * 50, 4.2 * 50)
    assert (tmp_path / "c.pdf").read_bytes().startswith(b"%PDF")
