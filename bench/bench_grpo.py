"""GRPO step time and peak GPU memory of the Qwen2-VL-2B architecture (random weights) through
``medvqa.training.grpo.train_grpo``, the path a ``train.method: grpo`` entry takes.

The model is Qwen2-VL-2B-Instruct's architecture (LM: 28 layers, width 1536, 12 heads / 2 KV
heads, MLP 8960, vocabulary 151,936, tied embeddings; ViT: 32 layers, width 1280; 2.21 B
parameters) built from its config with random weights (no hub download), LoRA r=16 on the LM's attention projections; the tokenizer,
chat template and processor are the tiny stand-in's (``write_tiny_vlm("qwen2_vl")``, real
classes and special tokens), its token ids copied into the config. Questions are the seeded
demo's train split. Prints and writes (``--out``) JSON: median seconds per optimizer step
(steps after the first), peak CUDA memory allocated, settings.

    python bench/bench_grpo.py --device cuda --steps 6 --group-size 8   # the issue's figure
    python bench/bench_grpo.py --size tiny --device cpu --steps 3          # a smoke run on CPU
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from medvqa.demo.dataset import make_demo  # noqa: E402
from medvqa.data.images import build_image_cache  # noqa: E402
from medvqa.models.registry import BuiltModel  # noqa: E402
from medvqa.models.vlm_sft import VlmSftSpec, wrap_lora  # noqa: E402
from medvqa.demo.tiny_vlm import TinyVlmSpec, write_tiny_vlm  # noqa: E402
from medvqa.models.batch import SplitPaths  # noqa: E402
from medvqa.training.grpo import train_grpo  # noqa: E402
from medvqa.training.spec import TrainSpec  # noqa: E402

QWEN2_VL_2B_TEXT = {"hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
                    "num_attention_heads": 12, "num_key_value_heads": 2, "vocab_size": 151936,
                    "max_position_embeddings": 32768, "initializer_range": 0.02, "rms_norm_eps": 1e-6,
                    "layer_types": ["full_attention"] * 28, "max_window_layers": 28,
                    "rope_parameters": {"mrope_section": [16, 24, 24], "rope_theta": 1000000.0, "rope_type": "default"}}
QWEN2_VL_2B_VISION = {"depth": 32, "embed_dim": 1280, "hidden_size": 1536, "num_heads": 16, "mlp_ratio": 4}


def demo_split(root: Path, image_px: int) -> SplitPaths:
    rows = make_demo(seed=0, n_images=40, image_px=image_px)
    parquet = root / "train.parquet"
    rows[rows["split"] == "train"].reset_index(drop=True).to_parquet(parquet)
    paths = SplitPaths(parquet, root / "images.npy", root / "images.ids.json")
    build_image_cache(parquet, image_px, paths.images, paths.image_ids)
    return paths


def checkpoint_dir(root: Path, size: str, image_px: int) -> Path:
    """The tiny stand-in's processor + tokenizer, with the 2B config (random weights are built in memory)."""
    rows = pd.read_parquet(root / "train.parquet", columns=["question", "answer"])
    out = write_tiny_vlm("qwen2_vl", root / "ckpt", [*rows["question"], *rows["answer"]], seed=0,
                         spec=TinyVlmSpec(image_size=image_px))
    if size == "2b":
        config = json.loads((out / "config.json").read_text())
        config["text_config"].update(QWEN2_VL_2B_TEXT)
        config["vision_config"].update(QWEN2_VL_2B_VISION)
        config["tie_word_embeddings"] = config["text_config"]["tie_word_embeddings"] = True  # as the 2B's config
        (out / "config.json").write_text(json.dumps(config))
    return out


def build(checkpoint: Path, device: str) -> BuiltModel:
    from transformers import AutoConfig, AutoModelForImageTextToText

    spec = VlmSftSpec(str(checkpoint), lora_r=16, lora_alpha=32, lora_dropout=0.0)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    with torch.device(device):
        model = AutoModelForImageTextToText.from_config(AutoConfig.from_pretrained(checkpoint), dtype=dtype)
    return BuiltModel("vlm_sft", {**spec.to_dict(), "model_type": "qwen2_vl"}, wrap_lora(spec, model.eval()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("2b", "tiny"), default="2b")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=2, help="questions per step")
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--max-completion-length", type=int, default=32)
    parser.add_argument("--image-px", type=int, default=448, help="image side (448: 256 merged image tokens)")
    parser.add_argument("--out", default="bench/grpo_result.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = demo_split(root, args.image_px)
        model = build(checkpoint_dir(root, args.size, args.image_px), args.device)
        spec = TrainSpec.from_mapping({
            "method": "grpo", "batch_size": args.batch_size, "lr": 1e-5, "warmup": 0.0, "seed": 0,
            "device": "cpu" if args.device == "cpu" else "auto",
            "grpo": {"group_size": args.group_size, "max_completion_length": args.max_completion_length,
                     "max_steps": args.steps, "save_steps": args.steps + 1},
        })
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        train_grpo(spec, model, paths, root / "run")
        wall = time.perf_counter() - start
        history = pd.read_csv(root / "run" / "history.csv")
    result = {
        "size": args.size, "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
        "dtype": "bfloat16" if args.device.startswith("cuda") else "float32", "steps": args.steps,
        "questions_per_step": args.batch_size, "group_size": args.group_size,
        "max_completion_length": args.max_completion_length, "image_px": args.image_px,
        "median_step_seconds": float(history["seconds"].iloc[1:].median()), "wall_seconds": wall,
        "mean_completion_length": float(history["completion_length"].mean()),
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if args.device.startswith("cuda") else None,
        "trainable_parameters": sum(p.numel() for p in model.module.parameters() if p.requires_grad),
    }
    print(json.dumps(result, indent=1))
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
