"""``python -m medvqa.inference.caption``: spec fields as options, resumable from the command line."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from medvqa.inference.caption import main, parts_dir
from medvqa.io import read_json
from medvqa.spec import ConfigError


def _argv(split, out, checkpoint, *extra) -> list[str]:
    return [
        "--data", str(split["data"]), "--images", str(split["images"]), "--image-ids", str(split["image_ids"]),
        "--out", str(out), "--kind", "blip", "--checkpoint", str(checkpoint), "--max-new-tokens", "6",
        "--batch-size", "3", "--chunk-size", "5", *extra,
    ]


def test_cli_stops_and_resumes(caption_split, sharp_blip_dir, tmp_path):
    out = tmp_path / "captions.parquet"
    main(_argv(caption_split, out, sharp_blip_dir, "--max-chunks", "1", "--prompt", "yes", "--model-name", "zs"))
    assert not out.exists() and len(list(parts_dir(out).glob("chunk-*.parquet"))) == 1
    settings = read_json(parts_dir(out) / "run.json")
    assert settings["prompt"] == "yes" and settings["max_new_tokens"] == 6  # text stays text, numbers parse
    main(_argv(caption_split, out, sharp_blip_dir, "--prompt", "yes", "--model-name", "zs", "--seed", "0"))
    frame = pd.read_parquet(out)
    assert frame["chunk"].tolist() == [0] * 5 + [1] * 5
    assert (frame["model"] == "zs").all()


def test_cli_rejects_bad_values(caption_split, sharp_blip_dir, tmp_path):
    with pytest.raises(ConfigError, match="num_beams"):
        main(_argv(caption_split, tmp_path / "x.parquet", sharp_blip_dir, "--num-beams", "0"))


def test_runs_as_a_module(caption_split, sharp_blip_dir, tmp_path):
    out = tmp_path / "captions.parquet"
    argv = _argv(caption_split, out, sharp_blip_dir, "--threads", "1", "--log", str(tmp_path / "caption.log"))
    subprocess.run([sys.executable, "-m", "medvqa.inference.caption", *argv], check=True, timeout=300)
    assert pd.read_parquet(out)["image_id"].is_unique
    assert "10 captions" in (tmp_path / "caption.log").read_text()
