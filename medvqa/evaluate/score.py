"""Scoring stage: predictions → ``results/metrics/{dataset}/{model}/{seed}/{split}.json``.

``score_vqa`` reads a data split (question_id, answer, answer_type [+ modality, organ,
content_type]) and a predictions parquet (question_id, prediction [+ confidence, samples,
answer_prob]); ``score_captions`` reads a caption split (image_id, caption) and a captions
parquet (image_id, generated). Both write one nested JSON in which every number sits next
to its sample size and bootstrap CI, and a "protocol" block states how it was computed
(normalisation, closed-question rule, BLEU weights and smoothing, ECE bins, confidence
source). NaN is written as null. An empty split is not an error: it gives n = 0 and null
values, so a dataset without a validation split does not stop the workflow.

Command line: ``python -m medvqa.evaluate.score --data D --predictions P --out O``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from medvqa.evaluate import calibration, metrics, stats
from medvqa.evaluate.embedding import POOLING, SentenceEncoder, embedding_similarity
from medvqa.evaluate.inputs import columns_of, read_captions, read_vqa
from medvqa.evaluate.normalise import CAPTION_TOKENISATION, NORMALISATION, answer_tokens, caption_tokens
from medvqa.io import setup_logging, write_json
from medvqa.spec import ConfigError, Spec, check_choice, check_range

log = logging.getLogger(__name__)

CLOSED_RULE = (
    "closed/open is the data split's answer_type column as written by the data stage (SLAKE: the "
    "source's answer_type; sources without one, e.g. VQA-RAD and PathVQA, mark yes/no answers closed)"
)
EMPTY_SPLIT = "an empty split is not an error: n = 0 and every value null"
CAPTION_BLEU_NOTE = (
    "equals sacrebleu with tokenize='none' on the same tokens, except that nltk counts a caption "
    "shorter than n tokens as one n-gram of order n (denominator max(1, 0)) where sacrebleu counts none"
)
SACREBLEU_NOTE = (
    "sacrebleu BLEU-4 on the raw captions, lower-cased, 13a tokeniser, exp smoothing (signature "
    "given); 13a keeps punctuation tokens, so it differs from the nltk corpus BLEU-4 above"
)
ROUGE_NOTE = (
    "rouge-score rougeL F-measure per image, best over its references; default tokeniser "
    "(lower case, non-alphanumerics dropped, so English only)"
)
CONFIDENCE_SOURCES = {
    "confidence": "the predictions' confidence column: probability of the chosen answer (softmax)",
    "sampled_agreement": "share of the sampled answers (samples column) equal to the normalised prediction",
    "answer_prob": "the predictions' answer_prob column: the model's probability of its own answer",
}


@dataclasses.dataclass(frozen=True)
class ScoreSpec(Spec):
    """Parameters of the scoring stage (config key ``evaluate``)."""

    n_bins: int = 15  # equal-width calibration bins on [0, 1]
    bootstrap_resamples: int = 1000  # resamples per confidence interval (>= 1000)
    bootstrap_seed: int = 0  # numpy default_rng seed of every bootstrap
    ci_level: float = 0.95  # coverage of the percentile bootstrap intervals
    bleu_smoothing: str = "method1"  # nltk SmoothingFunction method of sentence BLEU ("none" = method0)
    bleu_max_order: int = 4  # BLEU-1..bleu_max_order are reported
    group_columns: tuple[str, ...] = ("modality", "organ", "content_type")  # accuracy per group, if present
    embedding_encoder: str | None = None  # save_pretrained dir (or hub id) of a sentence encoder
    embedding_batch_size: int = 32
    embedding_max_length: int = 128
    rouge_stemmer: bool = False  # Porter stemming in ROUGE-L

    def __post_init__(self) -> None:
        # YAML gives lists; a frozen spec keeps a tuple.
        object.__setattr__(self, "group_columns", tuple(self.group_columns))

    def validate(self, where: str) -> None:
        check_range(where, "n_bins", self.n_bins, 1, 1000)
        check_range(where, "bootstrap_resamples", self.bootstrap_resamples, 1000)
        check_range(where, "ci_level", self.ci_level, 0.5, 0.999)
        check_choice(where, "bleu_smoothing", self.bleu_smoothing, metrics.SMOOTHING_NAMES)
        check_range(where, "bleu_max_order", self.bleu_max_order, 1, 4)
        check_range(where, "embedding_batch_size", self.embedding_batch_size, 1)
        check_range(where, "embedding_max_length", self.embedding_max_length, 1)
        if self.embedding_encoder is not None and not str(self.embedding_encoder).strip():
            raise ConfigError(f"{where}: embedding_encoder must be null or a model path, not ''")


def summarise(values: np.ndarray, spec: ScoreSpec) -> dict[str, Any]:
    """{"value": mean, "ci_low", "ci_high", "n"} of per-item scores (n,)."""
    values = np.asarray(values, dtype=np.float64)
    low, high = stats.bootstrap_ci(values, spec.bootstrap_resamples, spec.bootstrap_seed, spec.ci_level)
    value = float(values.mean()) if values.size else math.nan
    return {"value": value, "ci_low": low, "ci_high": high, "n": int(values.size)}


def accuracy_block(scores: np.ndarray, frame: pd.DataFrame, spec: ScoreSpec) -> dict[str, Any]:
    """Overall, closed, open and per-group summaries of per-question scores (n,)."""
    block = {"overall": summarise(scores, spec)}
    for kind in ("closed", "open"):
        block[kind] = summarise(scores[(frame["answer_type"] == kind).to_numpy()], spec)
    for col in spec.group_columns:
        if col in frame:
            labels = frame[col].astype("string").fillna("(missing)").to_numpy()
            block[f"by_{col}"] = {
                str(label): summarise(scores[labels == label], spec) for label in sorted(set(labels))
            }
    return block


def bleu_block(hyps: list[list[str]], refs: list[list[list[str]]], spec: ScoreSpec) -> dict[str, Any]:
    """Corpus BLEU-1..N (nltk, unsmoothed) with CIs from bootstrapped n-gram counts."""
    order = spec.bleu_max_order
    point = metrics.corpus_bleu(hyps, refs, order, smoothing="none")
    table = metrics.bleu_statistics(hyps, refs, order)
    out = {}
    for k in range(1, order + 1):
        def statistic(sums: np.ndarray, k: int = k) -> np.ndarray:
            return metrics.bleu_from_statistics(sums, k, order)

        dist = stats.bootstrap_statistic(table, statistic, spec.bootstrap_resamples, spec.bootstrap_seed)
        low, high = stats.percentile_interval(dist, spec.ci_level)
        out[f"bleu_{k}"] = {"value": point[f"bleu_{k}"], "ci_low": low, "ci_high": high, "n": len(hyps)}
    return out


def bleu_protocol(spec: ScoreSpec, tokenisation: str) -> dict[str, Any]:
    smoothing = "no smoothing (method0)"
    if spec.bleu_smoothing != "none":
        smoothing = f"SmoothingFunction().{spec.bleu_smoothing}"
    return {
        "implementation": "nltk.translate.bleu_score",
        "tokenisation": tokenisation,
        "weights": {f"bleu_{k}": list(metrics.BLEU_WEIGHTS[k]) for k in range(1, spec.bleu_max_order + 1)},
        "corpus": "corpus_bleu, no smoothing (method0, which leaves ~1e-77 or less instead of 0 when an "
        "n-gram order has no match), auto_reweigh off; CI from resampled per-item n-gram counts",
        "sentence_mean": f"mean over items of sentence_bleu with {smoothing}, auto_reweigh off",
    }


def embedding_block(predictions: Sequence[str], references: Sequence[Sequence[str]], spec: ScoreSpec):
    """(summary or None, protocol dict) of embedding cosine similarity."""
    if spec.embedding_encoder is None:
        return None, {"encoder": None, "reason": "no embedding_encoder configured in the scoring spec"}
    encoder = SentenceEncoder(spec.embedding_encoder, spec.embedding_batch_size, spec.embedding_max_length)
    sims = embedding_similarity(encoder, predictions, references)
    protocol = {"encoder": spec.embedding_encoder, "pooling": POOLING, "references": "max over references"}
    return summarise(sims, spec), protocol


def confidence_sources(frame: pd.DataFrame) -> dict[str, np.ndarray | str]:
    """Per-item confidence (n,) of each source present, or the reason it is absent."""
    sources: dict[str, np.ndarray | str] = {}
    columns = {"confidence": "confidence", "sampled_agreement": "samples", "answer_prob": "answer_prob"}
    for name, column in columns.items():
        if column not in frame:
            sources[name] = f"no {column} column in the predictions"
            continue
        if name == "sampled_agreement":
            values = calibration.sampled_agreement(frame["prediction"].tolist(), frame[column].tolist())
        else:
            values = frame[column].to_numpy(dtype=np.float64)
        usable = len(values) == 0 or (~np.isnan(values)).any()
        sources[name] = values if usable else f"{column} is null for every row"
    return sources


def calibration_section(frame: pd.DataFrame, correct: np.ndarray, spec: ScoreSpec):
    """(per-source calibration reports or None, protocol dict)."""
    reports, described = {}, {}
    for name, values in confidence_sources(frame).items():
        if isinstance(values, str):
            reports[name], described[name] = None, f"absent: {values}"
        else:
            reports[name] = calibration.calibration_report(values, correct, spec.n_bins)
            described[name] = CONFIDENCE_SOURCES[name]
    protocol = {
        "correctness": "exact_match",
        "n_bins": spec.n_bins,
        "binning": calibration.BINNING.format(n_bins=spec.n_bins),
        "metrics": calibration.METRICS,
        "sources": described,
    }
    return reports, protocol


def ci_protocol(spec: ScoreSpec, items: str) -> str:
    """How the confidence intervals were drawn; ``items``: what was resampled (questions, images)."""
    return stats.BOOTSTRAP_DESCRIPTION.format(
        items=items, seed=spec.bootstrap_seed, resamples=spec.bootstrap_resamples, level=spec.ci_level
    )


def vqa_counts(frame: pd.DataFrame) -> dict[str, int]:
    return {
        "total": len(frame),
        "closed": int((frame["answer_type"] == "closed").sum()),
        "open": int((frame["answer_type"] == "open").sum()),
        "empty_predictions": int((frame["prediction"] == "").sum()),
    }


def vqa_metrics(frame: pd.DataFrame, spec: ScoreSpec) -> dict[str, Any]:
    """The full metrics dict of aligned VQA rows (see ``read_vqa`` for the columns)."""
    preds, refs, kinds = frame["prediction"].tolist(), frame["answer"].tolist(), frame["answer_type"].tolist()
    correct = metrics.exact_match(preds, refs)
    per_protocol = {
        "exact_match": correct,
        "llava_med": metrics.llava_med_scores(preds, refs, kinds),
        "token_f1": metrics.token_f1_scores(preds, refs),
    }
    hyp_tok = [answer_tokens(p) for p in preds]
    ref_tok = [[answer_tokens(r)] for r in refs]
    sentence = metrics.sentence_bleu_scores(hyp_tok, ref_tok, spec.bleu_max_order, spec.bleu_smoothing)
    orders = range(1, spec.bleu_max_order + 1)
    embedding, embedding_protocol = embedding_block(preds, [[r] for r in refs], spec)
    calib, calib_protocol = calibration_section(frame, correct, spec)
    bleu_note = {"note": "answers are mostly 1-3 words, so BLEU-1 is the meaningful order for VQA"}
    return {
        "task": "vqa",
        "n": vqa_counts(frame),
        "accuracy": {name: accuracy_block(scores, frame, spec) for name, scores in per_protocol.items()},
        "bleu": {
            "sentence_mean": {f"bleu_{k}": summarise(sentence[:, k - 1], spec) for k in orders},
            "corpus": bleu_block(hyp_tok, ref_tok, spec),
        },
        "embedding_similarity": embedding,
        "calibration": calib,
        "protocol": {
            "normalisation": NORMALISATION,
            "closed_rule": CLOSED_RULE,
            "accuracy": metrics.PROTOCOLS,
            "groups": [c for c in spec.group_columns if c in frame],
            "bleu": bleu_protocol(spec, "words of the normalised answer") | bleu_note,
            "embedding_similarity": embedding_protocol,
            "calibration": calib_protocol,
            "ci": ci_protocol(spec, "questions"),
            "empty_split": EMPTY_SPLIT,
        },
    }


def sacrebleu_block(hypotheses: list[str], references: list[list[str]]) -> dict[str, Any] | None:
    """Standard sacreBLEU (13a tokeniser, lower-cased) for comparison with published numbers."""
    if not hypotheses:
        return None
    from sacrebleu.metrics import BLEU  # imported here: only the caption stage needs it

    width = max(len(r) for r in references)
    # sacrebleu takes one stream per reference slot; None pads images with fewer references.
    streams = [[refs[i] if i < len(refs) else None for refs in references] for i in range(width)]
    bleu = BLEU(lowercase=True)
    result = bleu.corpus_score(hypotheses, streams)
    return {"bleu_4": result.score / 100.0, "signature": str(bleu.get_signature())}


def caption_protocol(spec: ScoreSpec, embedding_protocol: dict) -> dict[str, Any]:
    stemmer = "on" if spec.rouge_stemmer else "off"
    return {
        "bleu": bleu_protocol(spec, CAPTION_TOKENISATION) | {"note": CAPTION_BLEU_NOTE},
        "sacrebleu": SACREBLEU_NOTE,
        "rouge_l": f"{ROUGE_NOTE}, stemmer {stemmer}; mean over images",
        "embedding_similarity": embedding_protocol,
        "ci": ci_protocol(spec, "images"),
        "empty_split": EMPTY_SPLIT,
    }


def caption_metrics(frame: pd.DataFrame, spec: ScoreSpec) -> dict[str, Any]:
    """The full metrics dict of aligned caption rows (see ``read_captions``)."""
    hyps, refs = frame["generated"].tolist(), frame["references"].tolist()
    hyp_tok = [caption_tokens(h) for h in hyps]
    ref_tok = [[caption_tokens(r) for r in rs] for rs in refs]
    embedding, embedding_protocol = embedding_block(hyps, refs, spec)
    counts = {
        "total": len(frame),
        "references": int(sum(len(r) for r in refs)),
        "empty_captions": int(sum(h == "" for h in hyps)),
    }
    return {
        "task": "caption",
        "n": counts,
        "bleu": {"corpus": bleu_block(hyp_tok, ref_tok, spec)},
        "sacrebleu": sacrebleu_block(hyps, refs),
        "rouge_l": summarise(metrics.rouge_l_scores(hyps, refs, spec.rouge_stemmer), spec),
        "embedding_similarity": embedding,
        "protocol": caption_protocol(spec, embedding_protocol),
    }


def jsonable(obj: Any) -> Any:
    """``obj`` with NaN/inf floats as None and numpy scalars as Python numbers."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _finish(result: dict, inputs: dict, spec: ScoreSpec, out_json: str | os.PathLike) -> dict:
    result = jsonable({**result, "inputs": inputs, "spec": spec.to_dict()})
    write_json(result, out_json)
    log.info("wrote %s (n=%d)", os.fspath(out_json), result["n"]["total"])
    return result


def score_vqa(data_path, predictions_path, out_json, spec: ScoreSpec | None = None) -> dict:
    """Score one VQA predictions parquet against its data split; write and return the JSON dict."""
    spec = spec or ScoreSpec()
    frame = read_vqa(data_path, predictions_path, spec.group_columns)
    inputs = {"data": os.fspath(data_path), "predictions": os.fspath(predictions_path)}
    return _finish(vqa_metrics(frame, spec), inputs, spec, out_json)


def score_captions(data_path, captions_path, out_json, spec: ScoreSpec | None = None) -> dict:
    """Score one generated-captions parquet against its caption split; write and return the JSON dict."""
    spec = spec or ScoreSpec()
    frame = read_captions(data_path, captions_path)
    inputs = {"data": os.fspath(data_path), "captions": os.fspath(captions_path)}
    return _finish(caption_metrics(frame, spec), inputs, spec, out_json)


def correctness(data_path, predictions_path) -> pd.Series:
    """Exact-match correctness (bool) per question_id, for ``stats.mcnemar`` between two models."""
    frame = read_vqa(data_path, predictions_path, ())
    correct = metrics.exact_match(frame["prediction"], frame["answer"]) == 1
    return pd.Series(correct, index=frame["question_id"], name="correct")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m medvqa.evaluate.score",
        description="Score predictions or generated captions into a metrics JSON.",
    )
    parser.add_argument("--data", required=True, help="results/data/{dataset}/{split}.parquet")
    parser.add_argument("--predictions", required=True, help="predictions parquet (VQA) or captions parquet")
    parser.add_argument("--out", required=True, help="metrics JSON to write")
    parser.add_argument(
        "--task", choices=("auto", "vqa", "caption"), default="auto",
        help="auto: vqa if the data split has question_id, else caption",
    )
    parser.add_argument("--spec", default="{}", help="ScoreSpec keys as a JSON object, e.g. '{\"n_bins\": 10}'")
    parser.add_argument("--log", default=None, help="log file (default: stderr)")
    args = parser.parse_args(argv)
    setup_logging(args.log)
    spec = ScoreSpec.from_mapping(json.loads(args.spec), where="--spec")
    task = args.task
    if task == "auto":
        task = "vqa" if "question_id" in columns_of(args.data) else "caption"
    score = score_vqa if task == "vqa" else score_captions
    score(args.data, args.predictions, args.out, spec)


if __name__ == "__main__":
    main()
