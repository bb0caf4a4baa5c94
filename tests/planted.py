"""A dataset with planted duplicate images (exact and near, within and across splits) and
distinct photographs that must not pair, for the leakage audit's tests.

Images are shipped scikit-image photographs (no network), not flat colours, which hash alike.
"""

import io

import pandas as pd
import skimage.data
from PIL import Image

SIDE = 128


def photo(name: str) -> Image.Image:
    """A shipped scikit-image photograph (no network), as a 128x128 RGB image."""
    pixels = getattr(skimage.data, name)()
    return Image.fromarray(pixels).convert("RGB").resize((SIDE, SIDE), Image.Resampling.LANCZOS)


def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def crop_slightly(img: Image.Image) -> Image.Image:
    """Lose one pixel on every side (under 1 % of the width)."""
    return img.crop((1, 1, SIDE - 1, SIDE - 1))


# (split, image_id, encoded image); comments name the planted pair each row belongs to.
def planted_images() -> list[tuple[str, str, bytes]]:
    camera, astronaut, coffee, chelsea = photo("camera"), photo("astronaut"), photo("coffee"), photo("chelsea")
    rocket, retina, histology = photo("rocket"), photo("retina"), photo("immunohistochemistry")
    return [
        ("train", "t-camera", encode(camera, "PNG")),
        ("train", "t-camera-tiff", encode(camera, "TIFF")),  # exact, within train (other format, name)
        ("train", "t-astronaut", encode(astronaut, "PNG")),
        ("train", "t-coffee", encode(coffee, "PNG")),
        ("train", "t-chelsea", encode(chelsea, "PNG")),
        ("train", "t-moon", encode(photo("moon"), "BMP")),  # same file size as x-coins, other pixels
        ("train", "t-brick", encode(photo("brick"), "PNG")),
        ("val", "v-astronaut-jpeg", encode(astronaut, "JPEG", quality=75)),  # near, train-val (recompressed)
        ("val", "v-rocket", encode(rocket, "PNG")),
        ("val", "v-colorwheel", encode(photo("colorwheel"), "PNG")),
        ("test", "x-camera-webp", encode(camera, "WEBP", lossless=True)),  # exact, train-test (lossless)
        ("test", "x-coffee-small", encode(coffee.resize((SIDE // 2, SIDE // 2)), "PNG")),  # near: resized
        ("test", "x-chelsea-crop", encode(crop_slightly(chelsea), "PNG")),  # near: slightly cropped
        ("test", "x-rocket", encode(rocket, "PNG")),  # exact, val-test
        ("test", "x-retina", encode(retina, "PNG")),
        ("test", "x-retina-jpeg", encode(retina, "JPEG", quality=85)),  # near, within test
        ("test", "x-histology", encode(histology, "PNG")),
        ("test", "x-coins", encode(photo("coins"), "BMP")),
    ]


EXPECTED_PAIRS = {
    ("train", "t-camera", "train", "t-camera-tiff", "exact"),
    ("train", "t-camera", "test", "x-camera-webp", "exact"),
    ("train", "t-camera-tiff", "test", "x-camera-webp", "exact"),
    ("train", "t-astronaut", "val", "v-astronaut-jpeg", "near"),
    ("train", "t-coffee", "test", "x-coffee-small", "near"),
    ("train", "t-chelsea", "test", "x-chelsea-crop", "near"),
    ("val", "v-rocket", "test", "x-rocket", "exact"),
    ("test", "x-retina", "test", "x-retina-jpeg", "near"),
}


def question_rows(split: str, image_id: str, image: bytes) -> list[dict]:
    """Two questions per image. On test images, the first repeats the question asked of the
    train twin with the same answer, the second asks it with another answer."""
    subject = image_id.split("-")[1]
    answers = ["yes", subject] if split != "test" else ["Yes.", "something else"]
    questions = [f"Is this a {subject}?", "What is shown?"]
    if split == "test":
        questions = [f"is this a {subject}", "What is SHOWN?"]
    return [
        {"question_id": f"{image_id}-q{k}", "image_id": image_id, "image": image, "question": questions[k],
         "answer": answers[k], "answer_type": "closed" if k == 0 else "open", "split": split}
        for k in range(2)
    ]




def planted_rows() -> pd.DataFrame:
    """Unified VQA rows of every split of the planted dataset."""
    return pd.DataFrame([r for split, i, img in planted_images() for r in question_rows(split, i, img)])


def write_planted(root, row_group_size: int = 3) -> dict:
    """The planted dataset as {split: parquet path} under ``root`` (small row groups: streamed)."""
    paths = {}
    for split, group in planted_rows().groupby("split"):
        paths[split] = root / f"{split}.parquet"
        group.to_parquet(paths[split], row_group_size=row_group_size, index=False)
    return paths
