"""CNN-LSTM attention maps: attention weights written at prediction time → overlays on the images.

Plotting never loads a model, so the cnn_lstm predict stage writes the question-guided
attention of every question next to its predictions:

    results/predictions/{dataset}/{model}/{seed}/{split}.attention.npy       float32 (n_questions, h, w)
    results/predictions/{dataset}/{model}/{seed}/{split}.attention.ids.json  list of question_id (row order)

Each (h, w) map is the softmax over the image feature grid (sums to 1). This module also
reads the images the model saw (``medvqa.data.images.load_image_cache``: the split's raw or png
cache, or the split parquet itself), the split's question, answer and image_id columns and the predictions
parquet (question_id, prediction), and draws a fixed sample of questions
(``FigureSpec.attention_size``, drawn with ``sample_seed`` from the sorted question ids).
"""

from __future__ import annotations

import dataclasses
import os
import textwrap

import numpy as np
import pandas as pd
from matplotlib.cm import ScalarMappable
from matplotlib.figure import Figure
from PIL import Image

from medvqa.data.images import load_image_cache
from medvqa.evaluate.inputs import as_text, read_columns
from medvqa.evaluate.normalise import normalise
from medvqa.io import read_json
from medvqa.report.figures import empty_panel, fixed_sample, new_figure, save_figure
from medvqa.report.spec import FigureSpec

COLUMNS = 4  # panels per figure row
CMAP = "viridis"


@dataclasses.dataclass(frozen=True)
class AttentionInputs:
    """Paths the attention figure reads (see the module docstring for their layout)."""

    attention: str | os.PathLike
    attention_ids: str | os.PathLike
    data: str | os.PathLike
    predictions: str | os.PathLike
    images: str | os.PathLike
    image_ids: str | os.PathLike
    image_size: int | None = None  # the dataset's: needed for image_cache none (medvqa.data.images)


def read_attention(npy: str | os.PathLike, ids_json: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """(maps (n, h, w) float32, question ids (n,)); the two files must agree in length."""
    maps = np.load(npy, mmap_mode="r")
    ids = [str(i) for i in read_json(ids_json)]
    if maps.ndim != 3 or maps.shape[0] != len(ids):
        raise ValueError(f"attention {os.fspath(npy)!r} has shape {maps.shape} but {len(ids)} ids")
    return maps, ids


def upsample(attention: np.ndarray, height: int, width: int) -> np.ndarray:
    """(h, w) weights → (height, width), bilinear, scaled to [0, 1] for display."""
    image = Image.fromarray(np.asarray(attention, dtype=np.float32), mode="F")
    big = np.asarray(image.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)
    span = float(big.max() - big.min())
    return (big - big.min()) / span if span > 0 else np.zeros_like(big)


def attention_rows(inputs: AttentionInputs, k: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """(sampled rows: question_id, image_id, question, answer, prediction; their maps (k, h, w);
    their images (k, H, W, 3))."""
    maps, ids = read_attention(inputs.attention, inputs.attention_ids)
    sample = fixed_sample(ids, k, seed)
    data = read_columns(inputs.data, ("question_id", "image_id", "question", "answer"), what="data split")
    preds = read_columns(inputs.predictions, ("question_id", "prediction"), what="predictions")
    rows = pd.DataFrame({"question_id": sample})
    for frame in (data, preds):
        frame = frame.assign(question_id=frame["question_id"].astype(str))
        rows = rows.merge(frame, on="question_id", how="left", validate="one_to_one")
    unknown = list(rows.loc[rows["image_id"].isna(), "question_id"])
    if unknown:
        raise ValueError(f"attention ids not in the data split: {unknown}")
    row_of = {q: i for i, q in enumerate(ids)}
    images, image_row = load_image_cache(inputs.images, inputs.image_ids, inputs.image_size)
    if not sample:
        return rows, np.zeros((0, 1, 1)), np.zeros((0, 1, 1, 3), dtype=np.uint8)
    sampled_maps = np.stack([maps[row_of[q]] for q in sample])
    sampled_images = np.stack([images[image_row[str(i)]] for i in rows["image_id"]])
    return rows, sampled_maps, sampled_images


def _caption(row) -> str:
    prediction = as_text(row.prediction)
    mark = "correct" if normalise(prediction) == normalise(as_text(row.answer)) else "wrong"
    text = f"Q: {row.question}\nA: {row.answer}\nPred: {prediction} ({mark})"
    return "\n".join(textwrap.fill(line, 34) for line in text.splitlines())


def plot_attention_maps(
    inputs: AttentionInputs,
    png: str | os.PathLike,
    pdf: str | os.PathLike,
    spec: FigureSpec | None = None,
    title: str = "",
) -> Figure:
    """The sampled images with their attention map overlaid (viridis, alpha 0.5) and Q / A / prediction.

    Viridis is perceptually uniform (jet shows false edges where its lightness jumps); one
    colorbar states the scale: each map is min-max scaled to [0, 1] on its own.
    """
    spec = spec or FigureSpec()
    rows, maps, images = attention_rows(inputs, spec.attention_size, spec.sample_seed)
    n_rows = max(1, -(-len(rows) // COLUMNS))
    fig = new_figure(3.2 * COLUMNS, 4.2 * n_rows)
    if rows.empty:
        empty_panel(fig.subplots(), "no attention maps")
    else:
        axes = fig.subplots(n_rows, COLUMNS, squeeze=False).ravel()
        for ax, row, attention, image in zip(axes, rows.itertuples(), maps, images):
            ax.imshow(image)
            shown = ax.imshow(upsample(attention, image.shape[0], image.shape[1]), cmap=CMAP, alpha=0.5,
                              vmin=0, vmax=1)
            ax.set_title(_caption(row), fontsize="x-small", loc="left")
        for ax in axes:
            ax.axis("off")
        # The bar shows the colormap without the overlay's transparency.
        bar = fig.colorbar(ScalarMappable(norm=shown.norm, cmap=CMAP), ax=list(axes), shrink=0.6, pad=0.02)
        bar.set_label("attention weight (each map scaled to [0, 1])")
    fig.suptitle(title or "question-guided attention")
    save_figure(fig, png, pdf, spec.dpi)
    return fig
