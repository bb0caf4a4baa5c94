"""Tiny VQA examples for the vlm_sft tests, in the form ``CachedVqaExamples`` yields them."""

from __future__ import annotations

import numpy as np

QUESTIONS = ("Is the image red?", "What colour is the image?", "Is there a lesion in the left lung?")
ANSWERS = ("yes", "no", "red", "blue", "left lung")


def vqa_examples(n: int = 8, side: int = 56) -> list[dict]:
    """Red images answer "yes", blue ones "no"; questions of three different lengths."""
    examples = []
    for i in range(n):
        image = np.zeros((side, side, 3), np.uint8)
        image[..., 0 if i % 2 == 0 else 2] = 200
        examples.append({
            "id": f"q{i}", "image": image, "question": QUESTIONS[i % len(QUESTIONS)],
            "answer": "yes" if i % 2 == 0 else "no",
        })
    return examples
