"""Scoring stage: predictions → ``results/metrics/{dataset}/{model}/{seed}/{split}.json``.

``score_vqa`` reads a data split (question_id, answer, answer_type [+ image_id, modality,
organ, content_type]) and a predictions parquet (question_id, prediction [+ confidence,
samples, answer_prob]); ``score_captions`` reads a caption split (image_id, caption) and a
captions parquet (image_id, generated). Both write one nested JSON in which every number
sits next to its sample size and CI (bootstrap over images by default; bare numbers such as
ECE have theirs under their section's "intervals"), a "protocol" block states how it was
computed (normalisation, closed-question rule, BLEU weights and smoothing, ECE bins,
confidence source, CI rules), and a "provenance" block (``medvqa.provenance``) what it was
computed from. Caption JSONs also hold one block per caption protocol of
``spec.caption_protocols`` (``coco``, ``imageclef``: see ``medvqa.evaluate.captions``), with its
rules and reference in ``protocol.caption_protocols``. NaN is written as null. An empty split is
not an error: it gives n = 0 and null values, so a dataset without a validation split does not
stop the workflow.

Command line: ``python -m medvqa.evaluate.score --data D --predictions P --out O``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from medvqa.evaluate import calibration, intervals, metrics, protocols, stats
from medvqa.evaluate.captions import CaptionOptions, caption_protocol_scores
from medvqa.evaluate.embedding import POOLING, SentenceEncoder, embedding_similarity
from medvqa.evaluate.inputs import candidates_block, columns_of, read_candidates, read_captions, read_vqa
from medvqa.evaluate.intervals import bootstrap_units, ci_protocol, vqa_ci_protocol
from medvqa.evaluate.normalise import CAPTION_TOKENISATION, NORMALISATION, answer_tokens, caption_tokens
from medvqa.io import setup_logging, write_json
from medvqa.provenance import provenance
from medvqa.evaluate.spec import ScoreSpec

log = logging.getLogger(__name__)

CLOSED_RULE = (
    "closed/open is the data split's answer_type column as written by the data stage (SLAKE: the "
    "source's answer_type; sources without one, e.g. VQA-RAD and PathVQA, mark yes/no answers closed)"
)
INFERRED_MARK = "no answer-type column in the source"  # start of medvqa.data.unify.CLOSED_RULE


def closed_open_rule(data_path) -> tuple[str, bool | None]:
    """(closed/open rule text, whether the type was inferred from the answer; None = not recorded).

    The data stage stores the rule a source applied in the split parquet's pandas attrs
    (``answer_type_rule``); a split written without it gets the generic CLOSED_RULE."""
    attrs = pd.read_parquet(data_path, columns=[]).attrs if os.path.exists(data_path) else {}
    rule = attrs.get("answer_type_rule")
    if not rule:
        return CLOSED_RULE, None
    inferred = str(rule).startswith(INFERRED_MARK)
    kind = "inferred from the answer by the data stage" if inferred else "taken from the source"
    return f"closed/open {kind}: {rule}", inferred


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
def summarise(values: np.ndarray, spec: ScoreSpec, units: np.ndarray | None = None) -> dict[str, Any]:
    """{"value": mean, "ci_low", "ci_high", "n", "ci_method"} of per-item scores (n,).

    ``units`` (n,): the bootstrap unit of each item (image ids), None = each item its own.
    The interval follows ``stats.mean_interval`` (bootstrap, Wilson for all-0 / all-1 scores).
    """
    values = np.asarray(values, dtype=np.float64)
    low, high, method = stats.mean_interval(
        values, spec.bootstrap_resamples, spec.bootstrap_seed, spec.ci_level, units
    )
    value = float(values.mean()) if values.size else math.nan
    return {"value": value, "ci_low": low, "ci_high": high, "n": int(values.size), "ci_method": method}


def accuracy_block(
    scores: np.ndarray, frame: pd.DataFrame, spec: ScoreSpec, units: np.ndarray | None = None
) -> dict[str, Any]:
    """Overall, closed, open and per-group summaries of per-question scores (n,)."""
    block = {"overall": summarise(scores, spec, units)}
    for kind in ("closed", "open"):
        mask = (frame["answer_type"] == kind).to_numpy()
        block[kind] = summarise(scores[mask], spec, intervals.subset(units, mask))
    for col in spec.group_columns:
        if col in frame:
            labels = frame[col].astype("string").fillna("(missing)").to_numpy()
            block[f"by_{col}"] = {
                str(label): summarise(scores[labels == label], spec, intervals.subset(units, labels == label))
                for label in sorted(set(labels))
            }
    return block


def bleu_block(
    hyps: list[list[str]], refs: list[list[list[str]]], spec: ScoreSpec, units: np.ndarray | None = None
) -> dict[str, Any]:
    """Corpus BLEU-1..N (nltk, unsmoothed): {"bleu_k": summary with "ci_method"}.

    The bootstrap statistic reproduces nltk's zero rules (``intervals.nltk_bleu_from_sums``),
    so a value of ~1e-104 (no matching 4-gram) gets an interval that contains it; an order
    with no match (or matching fully) adds its Wilson end (``stats.BLEU_WILSON_RULE``).
    """
    order = spec.bleu_max_order
    point = metrics.corpus_bleu(hyps, refs, order, smoothing="none")
    table = metrics.bleu_statistics(hyps, refs, order)
    return {
        f"bleu_{k}": intervals.nltk_bleu_summary(table, k, order, point[f"bleu_{k}"], spec, units)
        for k in range(1, order + 1)
    }


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


def embedding_block(
    predictions: Sequence[str], references: Sequence[Sequence[str]], spec: ScoreSpec,
    units: np.ndarray | None = None,
):
    """(summary or None, protocol dict) of embedding cosine similarity."""
    if spec.embedding_encoder is None:
        return None, {"encoder": None, "reason": "no embedding_encoder configured in the scoring spec"}
    encoder = SentenceEncoder(spec.embedding_encoder, spec.embedding_batch_size, spec.embedding_max_length)
    sims = embedding_similarity(encoder, predictions, references)
    protocol = {"encoder": spec.embedding_encoder, "pooling": POOLING, "references": "max over references"}
    return summarise(sims, spec, units), protocol


def calibration_section(
    frame: pd.DataFrame, correct: np.ndarray, spec: ScoreSpec, units: np.ndarray | None = None
):
    """(per-source calibration reports or None, protocol dict); each report holds "intervals"."""
    reports, described = {}, {}
    for name, (values, what) in calibration.confidence_sources(frame).items():
        if isinstance(values, str):
            reports[name], described[name] = None, f"absent: {values}"
        else:
            reports[name] = calibration.calibration_report(values, correct, spec.n_bins)
            reports[name]["intervals"] = intervals.calibration_intervals(
                reports[name], values, correct, units, spec
            )
            described[name] = what
    protocol = {
        "correctness": calibration.CORRECTNESS.format(protocol=spec.calibration_protocol),
        "correctness_protocol": spec.calibration_protocol,
        "n_bins": spec.n_bins,
        "binning": calibration.BINNING.format(n_bins=spec.n_bins),
        "metrics": calibration.METRICS,
        "intervals": intervals.CALIBRATION_RULE,
        "sources": described,
    }
    return reports, protocol


def vqa_counts(frame: pd.DataFrame) -> dict[str, int]:
    return {
        "total": len(frame),
        "closed": int((frame["answer_type"] == "closed").sum()),
        "open": int((frame["answer_type"] == "open").sum()),
        "empty_predictions": int((frame["prediction"] == "").sum()),
    }


def protocol_block(
    scored: protocols.Scored, frame: pd.DataFrame, spec: ScoreSpec, units: np.ndarray | None = None
) -> dict[str, Any]:
    """overall/closed/open/by-group of the per-question scores, plus each extra over its questions."""
    block = accuracy_block(scored.per_question, frame, spec, units)
    for name, values in scored.extras.items():
        scored_here = ~np.isnan(values)
        block[name] = summarise(values[scored_here], spec, None if units is None else units[scored_here])
    return block


def vqa_metrics(frame: pd.DataFrame, spec: ScoreSpec, candidates: Sequence[str] | None = None) -> dict[str, Any]:
    """The full metrics dict of aligned VQA rows (see ``read_vqa`` for the columns).

    ``candidates``: a LLaVA-Med candidate-answer list (``inputs.read_candidates``), for its open accuracy."""
    preds, refs, kinds = frame["prediction"].tolist(), frame["answer"].tolist(), frame["answer_type"].tolist()
    units = bootstrap_units(frame, spec)
    scored = {name: p.score(preds, refs, kinds, candidates=candidates) for name, p in protocols.PROTOCOLS.items()}
    # A question is correct for calibration when the chosen protocol gives it full marks.
    correct = (scored[spec.calibration_protocol].per_question == 1.0).astype(np.float64)
    hyp_tok = [answer_tokens(p) for p in preds]
    ref_tok = [[answer_tokens(r)] for r in refs]
    sentence = metrics.sentence_bleu_scores(hyp_tok, ref_tok, spec.bleu_max_order, spec.bleu_smoothing)
    orders = range(1, spec.bleu_max_order + 1)
    embedding, embedding_protocol = embedding_block(preds, [[r] for r in refs], spec, units)
    calib, calib_protocol = calibration_section(frame, correct, spec, units)
    bleu_note = {"note": "answers are mostly 1-3 words, so BLEU-1 is the meaningful order for VQA"}
    return {
        "task": "vqa",
        "n": vqa_counts(frame),
        "accuracy": {name: protocol_block(result, frame, spec, units) for name, result in scored.items()},
        "bleu": {
            "sentence_mean": {f"bleu_{k}": summarise(sentence[:, k - 1], spec, units) for k in orders},
            "corpus": bleu_block(hyp_tok, ref_tok, spec, units),
        },
        "embedding_similarity": embedding,
        "calibration": calib,
        "protocol": {
            "normalisation": NORMALISATION,
            "closed_rule": CLOSED_RULE,
            "accuracy": protocols.describe_all(),
            "groups": [c for c in spec.group_columns if c in frame],
            "bleu": bleu_protocol(spec, "words of the normalised answer") | bleu_note,
            "embedding_similarity": embedding_protocol,
            "calibration": calib_protocol,
            "ci": vqa_ci_protocol(frame, spec),
            "empty_split": EMPTY_SPLIT,
        },
    }


def sacrebleu_block(
    hypotheses: list[str], references: list[list[str]], spec: ScoreSpec
) -> dict[str, Any] | None:
    """Standard sacreBLEU (13a tokeniser, lower-cased) for comparison with published numbers,
    with a bootstrap interval over images under "intervals"."""
    if not hypotheses:
        return None
    from sacrebleu.metrics import BLEU  # imported here: only the caption stage needs it

    width = max(len(r) for r in references)
    # sacrebleu takes one stream per reference slot; None pads images with fewer references.
    streams = [[refs[i] if i < len(refs) else None for refs in references] for i in range(width)]
    bleu = BLEU(lowercase=True)
    result = bleu.corpus_score(hypotheses, streams)
    point = result.score / 100.0
    low, high, method = intervals.sacrebleu_interval(bleu, hypotheses, streams, point, spec)
    return {
        "bleu_4": point,
        "intervals": {"bleu_4": {"ci_low": low, "ci_high": high, "ci_method": method}},
        "signature": str(bleu.get_signature()),
    }


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
    options = CaptionOptions(
        spec.bootstrap_resamples, spec.bootstrap_seed, spec.ci_level, spec.ptb_tokenizer, spec.meteor
    )
    protocol_metrics, protocol_rules = caption_protocol_scores(hyps, refs, spec.caption_protocols, options)
    counts = {
        "total": len(frame),
        "references": int(sum(len(r) for r in refs)),
        "empty_captions": int(sum(h == "" for h in hyps)),
    }
    return {
        "task": "caption",
        "n": counts,
        "bleu": {"corpus": bleu_block(hyp_tok, ref_tok, spec)},
        "sacrebleu": sacrebleu_block(hyps, refs, spec),
        "rouge_l": summarise(metrics.rouge_l_scores(hyps, refs, spec.rouge_stemmer), spec),
        "embedding_similarity": embedding,
        **protocol_metrics,
        "protocol": caption_protocol(spec, embedding_protocol) | {"caption_protocols": protocol_rules},
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


def _finish(
    result: dict, inputs: dict, spec: ScoreSpec, out_json: str | os.PathLike, run: dict | None = None
) -> dict:
    """Add inputs, spec and provenance (``medvqa.provenance``) to ``result``; write the JSON."""
    scored = inputs.get("predictions", inputs.get("captions"))
    origin = provenance(result["task"], inputs["data"], scored, run)
    result = jsonable({**result, "inputs": inputs, "spec": spec.to_dict(), "provenance": origin})
    write_json(result, out_json)
    log.info("wrote %s (n=%d)", os.fspath(out_json), result["n"]["total"])
    return result


def score_vqa(
    data_path, predictions_path, out_json, spec: ScoreSpec | None = None, run: dict | None = None,
    candidates_path=None,
) -> dict:
    """Score one VQA predictions parquet against its data split; write and return the JSON dict.

    ``run``: what identifies the model, for the provenance block (``provenance.model_provenance``).
    ``candidates_path``: a LLaVA-Med candidate file, for llava_med's open accuracy.
    """
    spec = spec or ScoreSpec()
    frame = read_vqa(data_path, predictions_path, spec.group_columns)
    inputs = {"data": os.fspath(data_path), "predictions": os.fspath(predictions_path)}
    candidates = None if candidates_path is None else read_candidates(candidates_path)
    result = vqa_metrics(frame, spec, candidates)
    rule, inferred = closed_open_rule(data_path)
    result["protocol"].update(closed_rule=rule, answer_type_inferred=inferred)
    result["protocol"]["llava_med_candidates"] = candidates_block(candidates_path, candidates)
    return _finish(result, inputs, spec, out_json, run)


def score_captions(data_path, captions_path, out_json, spec: ScoreSpec | None = None, run: dict | None = None) -> dict:
    """Score one generated-captions parquet against its caption split; write and return the JSON dict."""
    spec = spec or ScoreSpec()
    frame = read_captions(data_path, captions_path)
    inputs = {"data": os.fspath(data_path), "captions": os.fspath(captions_path)}
    return _finish(caption_metrics(frame, spec), inputs, spec, out_json, run)


def correctness(data_path, predictions_path, protocol: str = protocols.DEFAULT_PROTOCOL) -> pd.Series:
    """Correctness (bool: the protocol's score is 1) per question_id, for ``stats.mcnemar``."""
    frame = read_vqa(data_path, predictions_path, ())
    scored = protocols.get(protocol).score(frame["prediction"].tolist(), frame["answer"].tolist(),
                                           frame["answer_type"].tolist())
    correct = scored.per_question == 1.0
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
    parser.add_argument(
        "--llava-med-candidates", default=None, metavar="JSON",
        help="LLaVA-Med candidate-answer file ({\"0\": [answers]}): adds llava_med's open accuracy (VQA)",
    )
    parser.add_argument("--log", default=None, help="log file (default: stderr)")
    args = parser.parse_args(argv)
    setup_logging(args.log)
    spec = ScoreSpec.from_mapping(json.loads(args.spec), where="--spec")
    task = args.task
    if task == "auto":
        task = "vqa" if "question_id" in columns_of(args.data) else "caption"
    if task == "vqa":
        score_vqa(args.data, args.predictions, args.out, spec, candidates_path=args.llava_med_candidates)
    else:
        score_captions(args.data, args.predictions, args.out, spec)


if __name__ == "__main__":
    main()
