"""Caption gallery: a caption split + generated captions → image, reference and generated text.

Reads ``results/data/{dataset}/{split}.parquet`` (image_id, image bytes, caption; an image
may have several reference rows) and ``results/captions/{dataset}/{model}/{seed}/{split}.parquet``
(image_id, generated). Shows a fixed sample of images (``FigureSpec.gallery_size``, drawn
with ``sample_seed`` from the sorted ids of the captions file), so every model of a dataset
is shown on the same images.
"""

from __future__ import annotations

import io
import os
import textwrap

import numpy as np
import pandas as pd
from PIL import Image

from medvqa.evaluate.inputs import as_text, read_columns
from medvqa.report.figures import empty_panel, fixed_sample, new_figure, save_figure
from medvqa.report.spec import FigureSpec

WRAP = 70  # characters per text line beside an image
MAX_CHARS = 400  # long captions are cut so one image keeps one row


def decode_image(data: bytes) -> np.ndarray:
    """Encoded PNG/JPEG bytes → (H, W, 3) uint8."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def wrapped(label: str, text: str) -> str:
    text = text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 3] + "..."
    return textwrap.fill(f"{label}: {text}", WRAP, subsequent_indent="    ")


def gallery_rows(data_path: str | os.PathLike, captions_path: str | os.PathLike, k: int, seed: int) -> pd.DataFrame:
    """The sampled images: image_id, image (bytes), references (list[str]), generated (str)."""
    generated = read_columns(captions_path, ("image_id", "generated"), what="captions")
    ids = fixed_sample(generated["image_id"].astype(str), k, seed)
    data = read_columns(data_path, ("image_id", "image", "caption"), what="caption split")
    data = data[data["image_id"].astype(str).isin(ids)].assign(image_id=lambda d: d["image_id"].astype(str))
    grouped = data.groupby("image_id", sort=True).agg(image=("image", "first"), references=("caption", list))
    generated = generated.assign(image_id=generated["image_id"].astype(str)).set_index("image_id")
    grouped["generated"] = [as_text(generated.loc[i, "generated"]) for i in grouped.index]
    return grouped.reset_index()


def plot_caption_gallery(
    data_path: str | os.PathLike,
    captions_path: str | os.PathLike,
    png: str | os.PathLike,
    pdf: str | os.PathLike,
    spec: FigureSpec | None = None,
    title: str = "",
) -> None:
    """One row per sampled image: the image, then its reference caption(s) and the generated one."""
    spec = spec or FigureSpec()
    rows = gallery_rows(data_path, captions_path, spec.gallery_size, spec.sample_seed)
    fig = new_figure(11, 1.8 * max(1, len(rows)) + 0.5)
    if rows.empty:
        empty_panel(fig.subplots(), "no generated captions")
    else:
        axes = fig.subplots(len(rows), 2, squeeze=False, width_ratios=(1, 3.2))
        for (image_ax, text_ax), row in zip(axes, rows.itertuples()):
            image_ax.imshow(decode_image(row.image))
            image_ax.set_title(row.image_id, fontsize="small")
            image_ax.axis("off")
            lines = [wrapped("Reference", ref) for ref in row.references] + [wrapped("Generated", row.generated)]
            text_ax.text(0.0, 1.0, "\n".join(lines), va="top", ha="left", fontsize="small",
                         transform=text_ax.transAxes)
            text_ax.axis("off")
    fig.suptitle(title or "caption gallery")
    save_figure(fig, png, pdf, spec.dpi)
