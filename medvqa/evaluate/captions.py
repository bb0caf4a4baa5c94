"""Caption protocols of the scoring stage: ``coco`` (COCO caption evaluation) and ``imageclef``.

Used by ``medvqa.evaluate.score.caption_metrics``; reads and writes no files. Each entry
of ``CAPTION_PROTOCOLS`` holds its label, the rules text and the reference (repository,
file, commit) it reproduces, and a scoring function ``(generated, references, options) ->
(metrics, protocol)``: generated is one caption per image (n,), references a list of
captions per image. Every metric is a summary {"value", "ci_low", "ci_high", "n", "ci_method"};
the interval is a percentile bootstrap over images, all metrics of a protocol on the same
resamples, and corpus metrics (BLEU, METEOR, CIDEr-D) are recomputed on each resample
from resampled per-image statistics (CIDEr-D: with its IDF recomputed from the resampled
references, see ``medvqa.evaluate.cider``). Where the bootstrap cannot vary (every image 0,
or every image at the metric's maximum) Wilson-based rules (CI_RULE) give the interval, so
no interval collapses to a point at 0 % or 100 %.
"""

from __future__ import annotations

import dataclasses
import math
import re
import string
from collections.abc import Callable, Iterator, Sequence
from importlib import metadata

import numpy as np

from medvqa.evaluate import stats
from medvqa.evaluate.ptb import TOKENIZERS, java_available, ptb_tokenize

COCO_REFERENCE = {
    "repository": "tylin/coco-caption",
    "file": "pycocoevalcap/tokenizer/ptbtokenizer.py, bleu/bleu_scorer.py, meteor/meteor.py, "
    "rouge/rouge.py, cider/cider_scorer.py",
    "commit": "bfd15962f582a52fb000e0733f2bcca6c74ff497",
}
IMAGECLEF_REFERENCE = {
    "repository": "taubsity/clef-caption-evaluation-2026",
    "file": "caption_prediction/evaluator.py (CaptionEvaluator.preprocess_caption, compute_rouge)",
    "commit": "93e73204c40afa9501c16ad43b99575922353bcb",
    "note": "the ImageCLEFmedical caption-prediction evaluator published for the 2026 task (Docker "
    "image, AI4MediaBench submission format); its ROUGE-1 equals the 2023 evaluator's "
    "(TiagoFilipeSousaGoncalves/ImageCLEFmedical2023VCMI @ d4b4b81) except for captions empty only "
    "after preprocessing. No ImageCLEF evaluator found computes BLEU-1, so it is not reported here",
}
CI_RULE = (
    "percentile bootstrap over images (default_rng(seed), images drawn with replacement, same count), "
    "every metric of the protocol on the same resamples; corpus metrics recomputed from the resampled "
    "per-image statistics; where the bootstrap has no spread (ci_method says which rule): "
    + stats.SCALED_WILSON_RULE + "; " + stats.BLEU_WILSON_RULE + "; METEOR, in [0, 1], is 0 exactly where "
    "every image scores 0 (no word matched) and 1 where every image scores 1 (every caption matched whole), "
    "and then every resample equals it: the Wilson interval of 0 or n of n images as for a per-image mean "
    "(ci_method \"wilson\"; at 0 an upper bound, since METEOR <= the larger of the precision and recall of "
    "matched words; at 1 the same rule by symmetry); n = the images; each interval is the hull of these ends, "
    "the bootstrap interval and the point (" + stats.HULL_RULE + ")"
)
COCO_RULES = {
    "bleu": "pycocoevalcap Bleu(4): corpus BLEU-1..4 over images, clipped counts against all references of "
    "an image, 'closest' reference length (ties: the shorter), brevity penalty on the corpus totals, "
    "(matches + 1e-15) / (guesses + 1e-9) so a zero count gives ~0 rather than an error",
    "meteor": "METEOR 1.5 (pycocoevalcap meteor-1.5.jar, java -Xmx2G, -l en -norm) on the PTB tokens; the "
    "corpus value is the jar's EVAL of the summed per-image statistics (not the mean of per-image scores), "
    "a caption that matches its reference whole (one chunk, every word matched) adding no chunk, as the jar's "
    "own aggregate counts it (such a caption's fragmentation is 0)",
    "rouge_l": "pycocoevalcap Rouge: LCS over space-split PTB tokens, best precision and best recall over "
    "the references, F with beta = 1.2: (1 + b^2) P R / (R + b^2 P); mean over images",
    "cider_d": "pycocoevalcap Cider (CIDEr-D): n = 1..4, tf-idf with document frequency over the scored "
    "images' references and log(number of images), clipped cosine, Gaussian length penalty sigma = 6 "
    "on bigram counts, mean over orders and references, x10; mean over images. Not capped at 1; tables "
    "print it x100 as COCO papers do, so it is not a percentage and can pass 100",
    "ci": CI_RULE + "; CIDEr-D's document frequency and log(N) are recomputed from each resample's "
    "references (an image drawn k times counts k times, as pycocoevalcap would count it)",
}
IMAGECLEF_RULES = {
    "preprocessing": "lower-cased; every run of digits replaced by the word 'number'; ASCII "
    "string.punctuation deleted (not replaced by a space); other characters kept",
    "rouge_1": "rouge-score rouge1 F-measure (the evaluator's HF evaluate 'rouge', use_stemmer=False, "
    "default tokeniser: lower case, non-[a-z0-9] characters split words) of the preprocessed captions "
    "per image, mean over images; 1 when both captions are empty as given (a missing one counts as "
    "empty), 0 when they are empty only after preprocessing (the 2023 evaluator meant 1 there)",
    "references": "ImageCLEF has one reference per image; with several, the best F over them is used",
    "ci": CI_RULE,
}


@dataclasses.dataclass(frozen=True)
class CaptionOptions:
    """Scoring settings shared by the caption protocols (built from ``ScoreSpec``)."""

    resamples: int = 1000  # bootstrap resamples of images
    seed: int = 0
    level: float = 0.95
    tokenizer: str = "auto"  # PTB tokenizer: auto | java | python (see medvqa.evaluate.ptb)
    meteor: bool = True  # METEOR needs java; skipped (with the reason) when java is absent


@dataclasses.dataclass(frozen=True)
class CaptionProtocol:
    label: str
    rules: dict[str, str]
    reference: dict[str, str]
    score: Callable[[Sequence[str], Sequence[Sequence[str]], CaptionOptions], tuple[dict, dict]]


def resample_counts(n: int, options: CaptionOptions, block: int = 64) -> Iterator[np.ndarray]:
    """Yield (rows, n) draw counts of ``options.resamples`` image resamples (default_rng(seed))."""
    rng = np.random.default_rng(options.seed)
    done = 0
    while done < options.resamples:
        rows = min(block, options.resamples - done)
        draws = rng.integers(0, n, size=(rows, n)) + (np.arange(rows)[:, None] * n)
        yield np.bincount(draws.ravel(), minlength=rows * n).reshape(rows, n).astype(np.float64)
        done += rows


def summaries(
    points: dict[str, float],
    statistics: dict[str, Callable],
    n: int,
    options: CaptionOptions,
    fixed: dict[str, tuple[tuple[float, ...], str]] | None = None,
):
    """{name: summary} with each statistic(counts (rows, n)) -> (rows,) bootstrapped on shared resamples.

    ``fixed`` {name: (ends, ci_method)}: the Wilson-based ends of a metric whose bootstrap has no
    spread (CI_RULE); its interval is the hull of the bootstrap interval (if it has a statistic),
    the ends and the point. A name in neither ``statistics`` nor ``fixed`` has no interval (NaN).
    """
    if n == 0:
        empty = {"value": math.nan, "ci_low": math.nan, "ci_high": math.nan, "n": 0, "ci_method": "none"}
        return {name: dict(empty) for name in points}
    fixed = fixed or {}
    dists: dict[str, list[np.ndarray]] = {name: [] for name in statistics}
    for counts in resample_counts(n, options):
        for name, statistic in statistics.items():
            dists[name].append(statistic(counts))
    out = {}
    for name, value in points.items():
        ends, method = fixed.get(name, ((), "bootstrap"))
        if name in dists:
            interval = stats.percentile_interval(np.concatenate(dists[name]), options.level)
        else:
            interval = (min(ends), max(ends)) if ends else (math.nan, math.nan)
        # HULL_RULE: float rounding of the resamples, and the one-sided Wilson ends.
        low, high = stats.widen(interval, (float(value), *ends))
        out[name] = {"value": float(value), "ci_low": low, "ci_high": high, "n": n, "ci_method": method}
    return out


def mean_wilson(per_image: np.ndarray, level: float, top: float = 1.0) -> tuple[tuple[float, ...], str] | None:
    """``fixed`` entry (ends, ci_method) of a per-image mean in [0, ``top``] whose images (n,) all score
    0 or all ``top`` (SCALED_WILSON_RULE), else None. ``top`` 10 (CIDEr-D, a cosine of identical
    vectors is 1 only to float rounding) allows 1e-9."""
    interval = stats.extreme_wilson(per_image, level, top, atol=stats.EXTREME_ATOL if top == 1.0 else 1e-9)
    if interval is None:
        return None
    return (interval, "wilson" if top == 1.0 else "wilson_scaled")


def coco_bleu_wilson(table: np.ndarray, order: int, level: float) -> tuple[tuple[float, ...], str] | None:
    """``fixed`` entry of COCO BLEU-``order`` under BLEU_WILSON_RULE (``bleu_table`` rows (n, 10)), else None."""
    ends = stats.bleu_wilson_ends(table.sum(axis=0), order, 4, len(table), level)
    return (ends, "wilson_precisions") if ends else None


def mean_statistic(per_image: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    return lambda counts: counts @ per_image / counts.sum(axis=1)


def bleu_table(tokens: Sequence[str], refs: Sequence[Sequence[str]]) -> np.ndarray:
    """(n, 10) per-image BLEU statistics as pycocoevalcap's BleuScorer cooks them.

    Columns: correct n-grams n = 1..4, guessed n-grams n = 1..4, hypothesis length, closest
    reference length. Summed over images they give the corpus score (``coco_bleu``).
    """
    from pycocoevalcap.bleu.bleu_scorer import cook_refs, cook_test

    rows = []
    for hyp, rs in zip(tokens, refs, strict=True):
        cooked = cook_test(hyp, cook_refs(rs, n=4), eff="closest", n=4)
        rows.append([*cooked["correct"], *cooked["guess"], cooked["testlen"], cooked["reflen"]])
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), 10)


def coco_bleu(sums: np.ndarray, order: int) -> np.ndarray:
    """(rows,) corpus BLEU-``order`` of summed ``bleu_table`` rows (rows, 10), BleuScorer's arithmetic."""
    sums = np.atleast_2d(sums)
    ratios = (sums[:, :order] + 1e-15) / (sums[:, 4 : 4 + order] + 1e-9)
    bleu = np.prod(ratios, axis=1) ** (1.0 / order)
    ratio = (sums[:, 8] + 1e-15) / (sums[:, 9] + 1e-9)
    return np.where(ratio < 1, bleu * np.exp(1 - 1 / ratio), bleu)


def _tokenised(generated, references, options) -> tuple[list[str], list[list[str]], str]:
    flat = [r for refs in references for r in refs]
    tokens, rule = ptb_tokenize([*generated, *flat], options.tokenizer)
    hyps, rest = tokens[: len(generated)], iter(tokens[len(generated) :])
    return hyps, [[next(rest) for _ in refs] for refs in references], rule


def meteor_block(hyps, refs, options) -> tuple[float, Callable | None, str, tuple | None]:
    """(corpus METEOR, its bootstrap statistic, rule, ``fixed`` entry or None) or (nan, None, reason,
    None) without java. The entry is ``mean_wilson`` of the per-image scores (all 0 or all 1)."""
    if not options.meteor:
        return math.nan, None, "not computed: meteor switched off in the scoring spec", None
    if not java_available():
        return math.nan, None, "not computed: METEOR needs java, and no java executable is on PATH", None
    from pycocoevalcap.meteor.meteor import Meteor

    scorer = Meteor()
    ids = range(len(hyps))
    value, per_image = scorer.compute_score({i: refs[i] for i in ids}, {i: [hyps[i]] for i in ids})
    # The same per-image statistics compute_score sends; their sums give the corpus value once a
    # caption matched whole (chunks 1, test and reference word matches = their lengths) adds no chunk,
    # as the jar's aggregate counts it; summed as sent, 50 such captions score 0.565 instead of 1.
    table = np.array([scorer._stat(h, r).split() for h, r in zip(hyps, refs)], dtype=np.float64)
    whole = (table[:, -3] == 1) & (table[:, -2] == table[:, 0]) & (table[:, -1] == table[:, 1])
    table[whole, -3] = 0.0

    def statistic(counts: np.ndarray) -> np.ndarray:
        out = []
        for sums in counts @ table:
            line = "EVAL ||| " + " ".join(repr(float(x)) for x in sums)
            scorer.meteor_p.stdin.write(f"{line}\n".encode())
            scorer.meteor_p.stdin.flush()
            scorer.meteor_p.stdout.readline()  # the (one) segment's score, equal to the aggregate
            out.append(float(scorer.meteor_p.stdout.readline().strip()))
        return np.asarray(out)

    return float(value), statistic, COCO_RULES["meteor"], mean_wilson(np.asarray(per_image), options.level)


def coco_scores(generated, references, options: CaptionOptions) -> tuple[dict, dict]:
    """BLEU-1..4, METEOR, ROUGE-L and CIDEr-D as the COCO caption evaluation computes them."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    from medvqa.evaluate.cider import CiderD  # scipy.sparse: imported only when captions are scored

    hyps, refs, tokenizer_rule = _tokenised(generated, references, options)
    n, level = len(hyps), options.level
    points, statistics, fixed, meteor_rule = {}, {}, {}, "not computed: empty split"
    if n:
        gts, res = {i: refs[i] for i in range(n)}, {i: [hyps[i]] for i in range(n)}
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        table = bleu_table(hyps, refs)
        for k in range(1, 5):
            points[f"bleu_{k}"] = bleu[k - 1]
            statistics[f"bleu_{k}"] = lambda counts, k=k: coco_bleu(counts @ table, k)
            fixed[f"bleu_{k}"] = coco_bleu_wilson(table, k, level)
        meteor, meteor_stat, meteor_rule, fixed["meteor"] = meteor_block(hyps, refs, options)
        if meteor_stat is not None:
            points["meteor"] = meteor
            if fixed["meteor"] is None:  # else every resample equals the point (CI_RULE)
                statistics["meteor"] = meteor_stat
        points["rouge_l"], rouge = Rouge().compute_score(gts, res)
        rouge = np.asarray(rouge, dtype=np.float64)
        fixed["rouge_l"] = mean_wilson(rouge, level)
        if fixed["rouge_l"] is None:
            statistics["rouge_l"] = mean_statistic(rouge)
        points["cider_d"], _ = Cider().compute_score(gts, res)
        cider = CiderD(hyps, refs)
        # IDF is recomputed per resample, so the bootstrap still runs; the Wilson ends widen it.
        statistics["cider_d"] = cider.corpus
        fixed["cider_d"] = mean_wilson(cider.image_scores(np.ones((1, n)))[:, 0], level, top=10.0)
    else:
        points = dict.fromkeys([*(f"bleu_{k}" for k in range(1, 5)), "rouge_l", "cider_d"], math.nan)
    fixed = {name: entry for name, entry in fixed.items() if entry is not None}
    metrics = summaries(points, statistics, n, options, fixed)
    metrics.setdefault("meteor", None)
    protocol = {"tokenizer": tokenizer_rule, **COCO_RULES, "meteor": meteor_rule,
                "implementation": f"pycocoevalcap {_version('pycocoevalcap')}"}
    return metrics, protocol


def _given(text: object) -> str:
    # A missing caption (None / NaN) is the empty CSV field the evaluator would read.
    return "" if text is None or (isinstance(text, float) and text != text) else str(text)


def imageclef_text(text: object) -> str:
    """A caption as the ImageCLEFmedical evaluator preprocesses it (see IMAGECLEF_RULES)."""
    text = re.sub(r"\d+", "number", _given(text).lower())
    return text.translate(str.maketrans("", "", string.punctuation))


def imageclef_rouge_1(generated: Sequence[str], references: Sequence[Sequence[str]]) -> np.ndarray:
    """(n,) ImageCLEF ROUGE-1 F per image (see IMAGECLEF_RULES)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=False)
    scores = []
    for gen, refs in zip(generated, references, strict=True):
        hyp = imageclef_text(gen)
        per_ref = [
            # compute_rouge scores `if len(gt) != 0 or len(candidate) != 0` (captions as given), else 1
            scorer.score(imageclef_text(ref), hyp)["rouge1"].fmeasure if _given(gen) or _given(ref) else 1.0
            for ref in refs
        ]
        scores.append(max(per_ref))
    return np.asarray(scores, dtype=np.float64)


def imageclef_scores(generated, references, options: CaptionOptions) -> tuple[dict, dict]:
    """ROUGE-1 as the ImageCLEFmedical caption evaluator computes it."""
    per_image = imageclef_rouge_1(generated, references)
    value = float(per_image.mean()) if len(per_image) else math.nan
    wilson = mean_wilson(per_image, options.level)
    statistics = {"rouge_1": mean_statistic(per_image)} if wilson is None else {}
    fixed = {"rouge_1": wilson} if wilson is not None else {}
    metrics = summaries({"rouge_1": value}, statistics, len(per_image), options, fixed)
    return metrics, {**IMAGECLEF_RULES, "implementation": f"rouge-score {_version('rouge-score')}"}


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "(not installed)"


CAPTION_PROTOCOLS = {
    "coco": CaptionProtocol("COCO caption evaluation", COCO_RULES, COCO_REFERENCE, coco_scores),
    "imageclef": CaptionProtocol(
        "ImageCLEFmedical caption (lexical part)", IMAGECLEF_RULES, IMAGECLEF_REFERENCE, imageclef_scores
    ),
}
PTB_TOKENIZERS = TOKENIZERS


def caption_protocol_scores(generated, references, names: Sequence[str], options: CaptionOptions):
    """({name: metrics}, {name: protocol block with label, rules and reference}) of each protocol."""
    metrics, protocols = {}, {}
    for name in names:
        entry = CAPTION_PROTOCOLS[name]
        metrics[name], rules = entry.score(list(generated), [list(r) for r in references], options)
        protocols[name] = {"label": entry.label, "rules": rules, "reference": entry.reference}
    return metrics, protocols
