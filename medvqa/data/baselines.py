"""Baselines of a dataset: how far one gets without a model (VQA: without the image).

Used twice. The dataset summary stage (``summary.json``) reports the blind VQA accuracies
(``majority_baseline``, ``question_only_baseline``: unified VQA rows of the train split
and of the split to score, only question, answer, answer_type read), returning

    {"overall": float | None, "closed": float | None, "open": float | None,
     "n": int, "n_closed": int, "n_open": int, ...}

where an accuracy is None when the scored split has no row of that answer type. And the
baseline stage writes every baseline as an ordinary run (seed 0) that the scoring stage
scores like a model, so tables and figures get the same metrics and intervals for it:

    results/predictions/{dataset}/baseline-majority/0/{split}.parquet        question_id, prediction, confidence
    results/predictions/{dataset}/baseline-question-only/0/{split}.parquet   question_id, prediction, confidence
    results/captions/{dataset}/baseline-frequent-caption/0/{split}.parquet   image_id, generated
    results/captions/{dataset}/baseline-nearest-caption/0/{split}.parquet    image_id, generated, neighbour_id, similarity

Answers are compared after ``normalise_answer``; questions are grouped after
``normalise_question``. ``BASELINE_RULES`` states each baseline's rule (table footnotes).

Command line: ``python -m medvqa.data.baselines --name baseline-majority --train T --split S --out O``.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from medvqa.data.answers import normalise_answer
from medvqa.data.schema import read_text_columns
from medvqa.io import setup_logging, write_parquet

log = logging.getLogger(__name__)

_SPACES = re.compile(r"\s+")
THUMBNAIL = 16  # side of the grey thumbnail the nearest-neighbour caption compares
BASELINE_RULES = {
    "baseline-majority": "the most frequent train answer for every question "
                         "(confidence: its share of the train answers)",
    "baseline-question-only": "the most frequent train answer of the same normalised "
                              "question, the majority answer for unseen questions (confidence: that "
                              "answer's share among the question's train answers)",
    "baseline-frequent-caption": "the most frequent train caption (whitespace collapsed; ties: the "
                                 "alphabetically first) for every image",
    "baseline-nearest-caption": f"the first train caption of the most similar "
                                f"train image, similarity = cosine of the mean-centred {THUMBNAIL}x{THUMBNAIL} "
                                "grey (PIL 'L', box-resampled) thumbnails of the cached images; ties: the "
                                "first train image in cache order",
}
BASELINES = {
    "vqa": ("baseline-majority", "baseline-question-only"),
    "caption": ("baseline-frequent-caption", "baseline-nearest-caption"),
}
BASELINE_SEED = 0  # baselines are deterministic: one run, written under seed 0


def is_baseline(model: str) -> bool:
    return model in BASELINE_RULES


def normalise_question(text: str) -> str:
    """Lower case, whitespace collapsed, trailing punctuation removed ("Is it CT ?" == "is it ct")."""
    return _SPACES.sub(" ", str(text).strip().lower()).rstrip(".,;:!? ").strip()


def _accuracy(correct: pd.Series, answer_type: pd.Series) -> dict:
    out: dict = {}
    for name, mask in (
        ("overall", pd.Series(True, index=correct.index)),
        ("closed", answer_type == "closed"),
        ("open", answer_type == "open"),
    ):
        out[name] = float(correct[mask].mean()) if mask.any() else None
    out.update(n=int(len(correct)), n_closed=int((answer_type == "closed").sum()),
               n_open=int((answer_type == "open").sum()))
    return out


def _most_frequent(answers: pd.Series) -> str | None:
    """The most frequent answer; ties go to the alphabetically first, so results are stable."""
    if answers.empty:
        return None
    counts = answers.value_counts()
    return min(counts.index[counts == counts.max()])


def majority_predictions(train_df: pd.DataFrame, test_df: pd.DataFrame) -> pd.DataFrame:
    """prediction (the most frequent normalised train answer, None without train rows) and
    confidence (its share of the train rows) for every row of ``test_df`` (same index)."""
    answers = train_df["answer"].map(normalise_answer)
    prediction = _most_frequent(answers)
    share = float((answers == prediction).mean()) if prediction is not None else np.nan
    return pd.DataFrame({"prediction": prediction, "confidence": share}, index=test_df.index)


def question_only_predictions(train_df: pd.DataFrame, test_df: pd.DataFrame) -> pd.DataFrame:
    """prediction, confidence and seen (bool) for every row of ``test_df`` (same index).

    Questions are matched by their normalised text; a question never seen in training gets
    the overall majority answer and its overall share.
    """
    pairs = pd.DataFrame({
        "question": train_df["question"].map(normalise_question),
        "answer": train_df["answer"].map(normalise_answer),
    })
    counts = pairs.value_counts().rename("n").reset_index()
    counts["share"] = counts["n"] / counts.groupby("question")["n"].transform("sum")
    # Per question: highest count first, then the alphabetically first answer (stable ties).
    best = counts.sort_values(["question", "n", "answer"], ascending=[True, False, True])
    lookup = best.drop_duplicates("question").set_index("question")
    questions = test_df["question"].map(normalise_question)
    seen = questions.isin(lookup.index)
    fallback = majority_predictions(train_df, test_df)
    return pd.DataFrame({
        "prediction": questions.map(lookup["answer"]).where(seen, fallback["prediction"]),
        "confidence": questions.map(lookup["share"]).where(seen, fallback["confidence"]).astype(float),
        "seen": seen,
    }, index=test_df.index)


def majority_baseline(train_df: pd.DataFrame, test_df: pd.DataFrame) -> dict:
    """Accuracy on ``test_df`` of always answering the most frequent train answer."""
    prediction = _most_frequent(train_df["answer"].map(normalise_answer))
    truth = test_df["answer"].map(normalise_answer)
    return {"prediction": prediction, **_accuracy(truth == prediction, test_df["answer_type"])}


def question_only_baseline(train_df: pd.DataFrame, test_df: pd.DataFrame) -> dict:
    """Accuracy on ``test_df`` of answering each question with its most frequent train answer
    (``question_only_predictions``); the share of unseen questions is returned as ``unseen``."""
    predicted = question_only_predictions(train_df, test_df)
    truth = test_df["answer"].map(normalise_answer)
    out = _accuracy(truth == predicted["prediction"], test_df["answer_type"])
    out["unseen"] = float(1.0 - predicted["seen"].mean()) if len(predicted) else None
    return out


def most_frequent_caption(captions: pd.Series) -> str:
    """The most frequent caption after collapsing whitespace; ties: the alphabetically first."""
    texts = captions.map(lambda c: _SPACES.sub(" ", str(c)).strip())
    return _most_frequent(texts[texts != ""]) or ""


def thumbnails(images: np.ndarray, batch: int = 512) -> np.ndarray:
    """(n, H, W, 3) uint8 → (n, THUMBNAIL**2) float32: grey, box-resampled, mean-centred and
    scaled to unit length (a flat image stays the zero vector: similar to nothing)."""
    from PIL import Image  # imported here: the summary stage never needs it

    out = np.zeros((len(images), THUMBNAIL * THUMBNAIL), dtype=np.float32)
    for start in range(0, len(images), batch):  # the cache is memory-mapped: stream it
        for i, image in enumerate(np.asarray(images[start:start + batch]), start):
            grey = Image.fromarray(image).convert("L").resize((THUMBNAIL, THUMBNAIL), Image.Resampling.BOX)
            out[i] = np.asarray(grey, dtype=np.float32).ravel()
    out -= out.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return np.divide(out, norms, out=np.zeros_like(out), where=norms > 1e-6)


def nearest(train: np.ndarray, query: np.ndarray, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(index into ``train``, cosine similarity) of each query row's most similar train row;
    argmax keeps the first of tied rows."""
    index = np.zeros(len(query), dtype=np.int64)
    similarity = np.zeros(len(query), dtype=np.float32)
    for start in range(0, len(query), batch):
        sims = query[start:start + batch] @ train.T
        index[start:start + batch] = sims.argmax(axis=1)
        similarity[start:start + batch] = sims.max(axis=1)
    return index, similarity


def _cached_features(cache: tuple, keep: pd.Series, image_size: int | None) -> tuple[np.ndarray, list[str]]:
    """Thumbnails and ids of the cached images whose id is in ``keep``: a derived view reads its
    base's caches (``images_from``), which may hold images the view dropped."""
    from medvqa.data.images import load_image_cache  # imported here: the summary stage never needs PIL

    images, row_of = load_image_cache(cache[0], cache[1], image_size)
    ids = list(row_of)
    wanted = set(keep.astype(str))
    rows = [i for i, image_id in enumerate(ids) if image_id in wanted]
    missing = wanted - set(ids)
    if missing:
        raise ValueError(f"image cache {os.fspath(cache[0])!r} lacks image ids {sorted(missing)[:5]}")
    return thumbnails(images)[rows], [ids[i] for i in rows]


def nearest_captions(train_df: pd.DataFrame, split_df: pd.DataFrame, train_cache: tuple,
                     split_cache: tuple, image_size: int | None = None) -> pd.DataFrame:
    """image_id, generated, neighbour_id, similarity for every image of the split;
    ``*_cache`` = (images, image_ids) of ``medvqa.data.images.load_image_cache`` holding the train
    split's and the scored split's images (``image_size``: needed for image_cache none)."""
    train_feats, train_ids = _cached_features(train_cache, train_df["image_id"], image_size)
    split_feats, split_ids = _cached_features(split_cache, split_df["image_id"], image_size)
    if not train_ids:
        raise ValueError("the train split has no images: no nearest-neighbour caption can be chosen")
    first_caption = train_df.assign(image_id=train_df["image_id"].astype(str)).drop_duplicates("image_id")
    caption_of = first_caption.set_index("image_id")["caption"]
    index, similarity = nearest(train_feats, split_feats)
    neighbours = [train_ids[i] for i in index]
    return pd.DataFrame({"image_id": split_ids, "generated": [caption_of[n] for n in neighbours],
                         "neighbour_id": neighbours, "similarity": similarity.astype(float)})


def write_baseline(
    name: str, train_path: str | os.PathLike, split_path: str | os.PathLike, out_path: str | os.PathLike,
    train_cache: tuple | None = None, split_cache: tuple | None = None, image_size: int | None = None,
) -> pd.DataFrame:
    """Write baseline ``name``'s predictions (VQA) or captions of one split, as a model run would.

    The nearest-neighbour caption also needs the image caches (``train_cache``, ``split_cache``).
    """
    if name not in BASELINE_RULES:
        raise ValueError(f"unknown baseline {name!r}; known: {', '.join(BASELINE_RULES)}")
    train, split = read_text_columns(train_path), read_text_columns(split_path)
    if name == "baseline-majority":
        frame = majority_predictions(train, split).assign(question_id=split["question_id"])
    elif name == "baseline-question-only":
        frame = question_only_predictions(train, split).assign(question_id=split["question_id"])
    elif name == "baseline-frequent-caption":
        ids = split["image_id"].astype(str).drop_duplicates()
        frame = pd.DataFrame({"image_id": ids, "generated": most_frequent_caption(train["caption"])})
    else:
        if train_cache is None or split_cache is None:
            raise ValueError(f"{name} needs the train and split image caches")
        frame = nearest_captions(train, split, train_cache, split_cache, image_size)
    if "question_id" in frame:
        frame = frame[["question_id", "prediction", "confidence"]].assign(
            prediction=lambda f: f["prediction"].fillna(""))
    write_parquet(frame.reset_index(drop=True), out_path)
    log.info("wrote %s for %d items of %s", name, len(frame), os.fspath(split_path))
    return frame


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write one baseline's predictions / captions of a split.")
    parser.add_argument("--name", required=True, choices=list(BASELINE_RULES))
    parser.add_argument("--train", required=True, help="train split parquet")
    parser.add_argument("--split", required=True, help="split parquet to predict")
    parser.add_argument("--out", required=True, help="predictions / captions parquet to write")
    parser.add_argument("--train-cache", nargs=2, metavar=("NPY", "IDS"), help="train image cache (nearest caption)")
    parser.add_argument("--split-cache", nargs=2, metavar=("NPY", "IDS"), help="split image cache (nearest caption)")
    parser.add_argument("--image-size", type=int, help="the dataset's image_size (image_cache: none)")
    args = parser.parse_args(argv)
    setup_logging()
    write_baseline(args.name, args.train, args.split, args.out,
                   tuple(args.train_cache) if args.train_cache else None,
                   tuple(args.split_cache) if args.split_cache else None, args.image_size)


if __name__ == "__main__":
    main()
