"""Batched (left-padded) vs one-at-a-time answer generation with a random Qwen2-VL.

Both runs go through ``medvqa.models.generation.generate_answers`` (collation, ``generate``, answer
probabilities) with a fixed number of new tokens (no early stop), so they do the same work per
question; the batched run should be several times faster on a GPU. Prints and writes (``--out``)
JSON with images per second of each run, their ratio, and the fraction of questions whose
generated token ids agree (1.0 in float32; bf16 rounding can flip a near-tie).

Sizes: ``tiny`` (the test checkpoint), ``medium`` (hidden 512, 4+4 layers; CPU-friendly), and
``real`` — the Qwen2-VL-2B-Instruct architecture (28 LM layers, hidden 1536, 151,936-token
vocabulary, 32-layer 1280-wide ViT) built from a hand-written config with random weights, no
download. The tokenizer/processor is always the tiny one (its special-token ids are written
into the config); the vocabulary only changes the embedding/LM-head cost, which is modelled.

    python bench/bench_generation.py                                   # tiny, CPU
    python bench/bench_generation.py --size medium --n 32
    python bench/bench_generation.py --device cuda --real-size --n 64 --batch-size 16 --image-size 448
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

import numpy as np  # noqa: E402
import torch  # noqa: E402

from medvqa.demo.tiny_vlm import TinyVlmSpec, write_tiny_vlm  # noqa: E402
from medvqa.models.generation import GenerationSpec, generate_answers  # noqa: E402
from medvqa.models.vlm_collate import PromptFormat, VlmCollator  # noqa: E402

QUESTIONS = (
    "Is there a lesion?", "What organ is shown in this image?", "Is the abnormality in the left or the right lung?",
)
# Qwen2-VL-2B-Instruct's config.json, by hand (text + vision tower).
REAL_TEXT = dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                 num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768, rms_norm_eps=1e-6,
                 rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]})
REAL_VISION = dict(depth=32, embed_dim=1280, hidden_size=1536, mlp_ratio=4, num_heads=16, patch_size=14,
                   spatial_merge_size=2, temporal_patch_size=2, hidden_act="quick_gelu")
MEDIUM_TEXT = dict(hidden_size=512, intermediate_size=1536, num_hidden_layers=4, num_attention_heads=8,
                   num_key_value_heads=2, vocab_size=32000,
                   rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [8, 12, 12]})
MEDIUM_VISION = dict(depth=4, embed_dim=256, hidden_size=512, mlp_ratio=4, num_heads=4, patch_size=14,
                     spatial_merge_size=2, temporal_patch_size=2)


def build_model(size: str, checkpoint: Path, processor, device: torch.device, dtype: torch.dtype):
    """The tiny checkpoint as saved, or a random model of the medium / real architecture."""
    from transformers import AutoModelForImageTextToText, Qwen2VLConfig, Qwen2VLForConditionalGeneration

    if size == "tiny":
        return AutoModelForImageTextToText.from_pretrained(checkpoint, dtype=dtype).to(device).eval()
    text, vision = (REAL_TEXT, REAL_VISION) if size == "real" else (MEDIUM_TEXT, MEDIUM_VISION)
    ids = processor.tokenizer.convert_tokens_to_ids
    config = Qwen2VLConfig(
        text_config={**text, "eos_token_id": ids("<|im_end|>"), "pad_token_id": ids("<|endoftext|>")},
        vision_config=vision, image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=size == "real",
    )
    with torch.device(device):  # initialise the weights where they will run (fast on a GPU)
        model = Qwen2VLForConditionalGeneration._from_config(config, dtype=dtype, attn_implementation="sdpa")
    return model.eval()


def examples(n: int, side: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"id": f"q{i}", "image": rng.integers(0, 256, (side, side, 3), dtype=np.uint8),
             "question": QUESTIONS[i % len(QUESTIONS)]} for i in range(n)]


def timed(model, collate, rows, tokenizer, spec: GenerationSpec, device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    # A stop id that never occurs: every question gets exactly max_new_tokens tokens.
    results = generate_answers(model, collate, rows, tokenizer, spec, stop_ids=[-1])
    if device.type == "cuda":
        torch.cuda.synchronize()
    return results, time.perf_counter() - start


def run(args) -> dict:
    device = torch.device(args.device)
    default = torch.bfloat16 if device.type == "cuda" else torch.float32
    dtype = default if args.dtype == "auto" else getattr(torch, args.dtype)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = write_tiny_vlm("qwen2_vl", tmp, QUESTIONS, seed=0,
                                    spec=TinyVlmSpec(image_size=max(56, args.image_size // 28 * 28)))
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained(checkpoint)
        model = build_model(args.size, Path(checkpoint), processor, device, dtype)
    collate = VlmCollator(processor, PromptFormat(end_of_turn="<|im_end|>"), with_labels=False, padding_side="left")
    rows = examples(args.n, args.image_size)
    common = dict(max_new_tokens=args.max_new_tokens, answer_prob_from="scores")
    batched_spec = GenerationSpec(batch_size=args.batch_size, **common)
    single_spec = GenerationSpec(batch_size=1, **common)
    timed(model, collate, rows[: args.batch_size], processor.tokenizer, batched_spec, device)  # warm-up
    batched, t_batched = timed(model, collate, rows, processor.tokenizer, batched_spec, device)
    single, t_single = timed(model, collate, rows, processor.tokenizer, single_spec, device)
    agree = np.mean([a["answer_ids"] == b["answer_ids"] for a, b in zip(batched, single)])
    return {
        "size": args.size, "device": str(device), "dtype": str(dtype).removeprefix("torch."),
        "parameters": sum(p.numel() for p in model.parameters()), "n": args.n, "batch_size": args.batch_size,
        "image_size": args.image_size,
        "image_tokens": int((collate(rows[:1])["input_ids"] == processor.image_token_id).sum()),
        "max_new_tokens": args.max_new_tokens, "threads": torch.get_num_threads(),
        "batched_images_per_s": args.n / t_batched, "single_images_per_s": args.n / t_single,
        "speedup": t_single / t_batched, "answers_agree": float(agree),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=("tiny", "medium", "real"), default="tiny")
    parser.add_argument("--real-size", action="store_true", help="same as --size real (Qwen2-VL-2B architecture)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16"), default="auto",
                        help="auto: bfloat16 on CUDA, float32 on CPU")
    parser.add_argument("--n", type=int, default=128, help="questions (images) per run")
    parser.add_argument("--batch-size", type=int, default=16, help="images per generate call (try 16 and 32)")
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=56, help="side of the square images, px")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON result here")
    args = parser.parse_args()
    args.size = "real" if args.real_size else args.size
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the deliberate never-occurring stop id warns on every call
    result = run(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
