"""Small builders of on-disk test data in the project's real formats."""

import io

import numpy as np
import pandas as pd
from PIL import Image


def png_bytes(color=(200, 30, 30), size=(40, 30)) -> bytes:
    """A solid-colour PNG (width, height) as encoded bytes."""
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def vqa_rows(n_images=6, questions_per_image=3, split="train", prefix="x") -> pd.DataFrame:
    """Unified VQA rows: image i is a solid colour, questions ask about it."""
    rng = np.random.default_rng(len(prefix) + n_images)
    rows = []
    for i in range(n_images):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        image = png_bytes(color)
        for q in range(questions_per_image):
            closed = q % 2 == 0
            rows.append(
                {
                    "question_id": f"{prefix}-{split}-{i}-{q}",
                    "image_id": f"{prefix}-img-{split}-{i}",
                    "image": image,
                    "question": "Is the image red?" if closed else "What colour is the image?",
                    "answer": ("Yes" if color[0] > 127 else "No") if closed else ("red" if color[0] > 127 else "blue"),
                    "answer_type": "closed" if closed else "open",
                    "split": split,
                    "q_lang": "en" if q < 2 else "zh",
                }
            )
    return pd.DataFrame(rows)
