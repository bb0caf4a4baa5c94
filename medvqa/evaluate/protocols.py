"""The registry of VQA scoring protocols: one frozen entry per named protocol.

Read by the scoring stage (``medvqa.evaluate.score``: which per-question scores to compute
and which rules text to write into every metrics JSON), by the report (table footnotes,
published-number pairing, figure labels) and by the config checks (allowed names). A
protocol is named after the reference it reproduces; a variant that differs gets its own
name. Adding a protocol = one ``Protocol`` in ``PROTOCOLS`` plus its tests in
``tests/evaluate/test_evaluate_protocols.py``.

Every protocol's ``score(predictions, references, answer_types)`` returns a ``Scored``:
``per_question`` (n,) feeds the overall / closed / open / per-group summaries (closed and
open split by the data's answer_type column), and ``extras`` are further per-question
columns the reference also reports, NaN where the reference leaves a question out (e.g.
LLaVA-Med computes its F1 and BLEU on open questions only).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from medvqa.evaluate import metrics
from medvqa.evaluate import reference_scores as ref
from medvqa.evaluate.normalise import NORMALISATION, answer_tokens, normalise
from medvqa.evaluate.vqa_eval_text import RULES as VQA_EVAL_RULES


@dataclasses.dataclass(frozen=True)
class Reference:
    """What a protocol reproduces: a repository file at a commit, or a publication."""

    repository: str  # "microsoft/LLaVA-Med", or a paper's arXiv id
    files: tuple[str, ...]  # files (or sections) read
    commit: str | None  # the commit read; None for a publication

    def text(self) -> str:
        where = ", ".join(self.files)
        return f"{self.repository} {where}" + (f" @ {self.commit}" if self.commit else "")


@dataclasses.dataclass(frozen=True)
class Scored:
    """Per-question scores of one protocol: ``per_question`` (n,), ``extras`` {name: (n,) with NaN}."""

    per_question: np.ndarray
    extras: Mapping[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class Protocol:
    name: str
    label: str  # short column / axis label
    scoring: Callable[..., Scored]  # (predictions, references, answer_types, **options) -> Scored
    rules: str  # written into every metrics JSON and table footnote
    reference: Reference | None  # None: this project's own rule
    # Table columns (key, label, leaf of metrics["accuracy"][name]); the key is also what a
    # published number names as its metric.
    columns: tuple[tuple[str, str, str], ...] = ()
    options: tuple[str, ...] = ()  # keyword options of ``scoring`` (e.g. llava_med's candidates)

    def score(self, predictions, references, answer_types, **options) -> Scored:
        """Per-question scores; each option this protocol does not take is ignored."""
        taken = {key: value for key, value in options.items() if key in self.options}
        return self.scoring(predictions, references, answer_types, **taken)

    def describe(self) -> dict[str, object]:
        """The JSON block of this protocol: label, rules, reference."""
        reference = None if self.reference is None else dataclasses.asdict(self.reference)
        return {"label": self.label, "rules": self.rules, "reference": reference}

    def footnote(self) -> str:
        return footnote(self.name, self.describe())


def footnote(name: str, described: Mapping[str, object]) -> str:
    """A table footnote from a protocol's JSON block (``Protocol.describe``): label, name, reference, rules."""
    if not isinstance(described, Mapping):  # metrics JSON written before the registry: plain text
        return f"{name}: {described}"
    reference = described.get("reference")
    if not reference:
        source = "this project's rule"
    else:
        read = Reference(reference["repository"], tuple(reference["files"]), reference["commit"])
        # A publication read at no commit is followed, not reproduced (medgemma: not even read).
        source = ("reproduces " if read.commit else "meant to follow ") + read.text()
    return f"{described.get('label')} ({name}; {source}): {described.get('rules')}"


def _text(values: Sequence[object]) -> list[str]:
    # Predictions can be None/NaN (a model gave nothing); every reference script sees "".
    return ["" if v is None or (isinstance(v, float) and v != v) else str(v) for v in values]


def _array(values) -> np.ndarray:
    return np.asarray(list(values), dtype=np.float64).reshape(-1)


def exact_match_scores(preds, refs, kinds) -> Scored:
    hits = [normalise(p) == normalise(r) for p, r in zip(_text(preds), _text(refs), strict=True)]
    return Scored(_array(hits), {})


def llava_med_scores(preds, refs, kinds, candidates: Sequence[str] | None = None) -> Scored:
    """LLaVA-Med run_eval.py: closed yes/no-and-substring hit, open recall; extras on open only.

    ``candidates``: the answers of a LLaVA-Med candidate file; with them the extra
    ``open_accuracy`` is the script's 'open accuracy' row (absent without)."""
    names = ("exact", "f1", "precision", "recall", "bleu", "bleu_1", "bleu_2", "bleu_3")
    if candidates is not None:
        names = (*names, "open_accuracy")
    main, extras = [], {name: [] for name in (*names, "closed_as_script")}
    for pred, answer, kind in zip(_text(preds), _text(refs), kinds, strict=True):
        if kind == "closed":
            hit = ref.llava_med_closed_hit(pred, answer)
            main.append(hit)
            for name in names:
                extras[name].append(np.nan)
            # The script appends nothing for a yes/no prediction that misses the reference.
            dropped = hit == 0.0 and ref.llava_med_says_yes_or_no(pred)
            extras["closed_as_script"].append(np.nan if dropped else hit)
            continue
        extras["closed_as_script"].append(np.nan)
        f1, precision, recall = ref.llava_med_f1(pred, answer)
        main.append(recall)
        row = {"exact": ref.llava_med_exact(pred, answer), "f1": f1, "precision": precision,
               "recall": recall, **ref.llava_med_bleu(pred, answer)}
        if candidates is not None:
            row["open_accuracy"] = ref.llava_med_open_hit(pred, answer, candidates)
        for name in names:
            extras[name].append(row[name])
    return Scored(_array(main), {k: _array(v) for k, v in extras.items()})


def llava_med_tokens_scores(preds, refs, kinds) -> Scored:
    """This project's whole-token variant of the LLaVA-Med rule (the former 'llava_med')."""
    scores = []
    for pred, answer, kind in zip(_text(preds), _text(refs), kinds, strict=True):
        p, r = answer_tokens(pred), answer_tokens(answer)
        scores.append(float(metrics.contains_tokens(p, r)) if kind == "closed" else metrics.token_recall(p, r))
    return Scored(_array(scores), {})


def token_f1_scores(preds, refs, kinds) -> Scored:
    pairs = zip(_text(preds), _text(refs), strict=True)
    return Scored(_array(metrics.token_f1(answer_tokens(p), answer_tokens(r)) for p, r in pairs), {})


def medgemma_scores(preds, refs, kinds) -> Scored:
    """Closed: exact match; open: token recall; extra token_f1 over every question (see its rules text:
    the report's own definitions are not verified)."""
    main, f1 = [], []
    for pred, answer, kind in zip(_text(preds), _text(refs), kinds, strict=True):
        p, r = answer_tokens(pred), answer_tokens(answer)
        main.append(float(p == r) if kind == "closed" else metrics.token_recall(p, r))
        f1.append(metrics.token_f1(p, r))
    return Scored(_array(main), {"token_f1": _array(f1)})


def multimedeval_scores(preds, refs, kinds) -> Scored:
    """MultiMedEval VQA.evaluate: per-question hit (recall thresholds); F1, recall, BLEU-1 extras."""
    names = ("f1", "recall", "bleu_1", "closed_accuracy", "open_accuracy", "open_recall")
    main, extras = [], {name: [] for name in names}
    for pred, answer in zip(_text(preds), _text(refs), strict=True):
        f1, _, recall = ref.multimedeval_token_scores(pred, answer)
        hit, closed = ref.multimedeval_hit(pred, answer), ref.multimedeval_closed(answer)
        main.append(hit)
        extras["f1"].append(f1)
        extras["recall"].append(recall)
        extras["bleu_1"].append(ref.multimedeval_bleu1(pred, answer))
        # closedQuestionsAccuracy / openQuestionsAccuracy / openQuestionsRecall use ITS split
        extras["closed_accuracy"].append(hit if closed else np.nan)
        extras["open_accuracy"].append(np.nan if closed else hit)
        extras["open_recall"].append(np.nan if closed else recall)
    return Scored(_array(main), {k: _array(v) for k, v in extras.items()})


LLAVA_MED = Reference(
    "microsoft/LLaVA-Med",
    ("llava/eval/run_eval.py", "llava/eval/eval_metrics/evaluate_metrics.py",
     "llava/eval/eval_metrics/utils.py", "llava/eval/eval_metrics/glossary.py (@ 356ba55)"),
    "ad758b687d4e79628dbfdb149dc545641ed29014",
)
MULTIMEDEVAL = Reference(
    "corentin-ryr/MultiMedEval",
    ("multimedeval/task_families.py (VQA.evaluate)", "multimedeval/utils.py (clean_str, @ e06fe64)"),
    "12ab84bb0d503dbcacd2cb0caf578000468f3356",
)
# Only the report's abstract was readable through this project's search tools (2026-12-02), so
# its metric definitions are not verified; the metric names come from Google's model card.
MEDGEMMA = Reference(
    "MedGemma Technical Report, arXiv:2507.05201",
    ("(metric definitions NOT verified against the report text: only its abstract was read)",),
    None,
)
MEDGEMMA_NOT_VERIFIED = "not verified against the report text"

PROTOCOLS: dict[str, Protocol] = {
    "exact_match": Protocol(
        "exact_match", "EM", exact_match_scores,
        f"1 if the normalised prediction equals the normalised reference, else 0. Normalisation: "
        f"{NORMALISATION}", None,
        (("em_overall", "EM all", "overall"), ("em_closed", "EM closed", "closed"), ("em_open", "EM open", "open")),
    ),
    "llava_med": Protocol(
        "llava_med", "LLaVA-Med", llava_med_scores,
        "as LLaVA-Med's run_eval.py computes it. Both strings are lower-cased and normalised "
        f"({VQA_EVAL_RULES}). Closed: 1 if the prediction contains 'yes' or 'no' and contains the "
        "reference, both as raw substrings ('no' inside 'normal' counts), else 0; at this commit the "
        "script appends nothing for a yes/no prediction that misses the reference (dropping it from "
        "the denominator), which its authors later fixed: such a question counts 0 here, and the extra "
        "closed_as_script gives the yes/no accuracy exactly as that script prints it. Open: "
        "calculate_f1score's recall (the script's 'recall' row, the paper's open-set number), where a "
        "shared word counts as often as it occurs in the prediction (repeated prediction words raise "
        "it) and number words are digits. The script's 'open accuracy' row needs a candidate-answer "
        "file (never released for the paper): given one (evaluate.llava_med_candidates), the extra "
        "open_accuracy reproduces it: each candidate is scored by the distinct prediction words among "
        "its distinct words over their number, the first best candidate is the answer, a hit iff it "
        "equals the reference (an empty prediction picks the first candidate). Extras, on "
        "open questions only as in the script: its 'exact match' (distinct reference words found / "
        "prediction words), F1, precision, recall and nltk sentence BLEU (no smoothing) with default "
        "weights and single-order weights 1, 2, 3",
        LLAVA_MED,
        (("llava_med_closed", "LLaVA-Med closed", "closed"), ("llava_med_open", "LLaVA-Med open recall", "open")),
        options=("candidates",),
    ),
    "llava_med_tokens": Protocol(
        "llava_med_tokens", "LLaVA-Med (whole tokens)", llava_med_tokens_scores,
        "this project's stricter variant of the LLaVA-Med rule, on our normalisation. Closed: 1 if the "
        "normalised reference occurs in the normalised prediction as a whole-word token sequence "
        "('no' inside 'normal' does not count), else 0. Open: recall of the reference tokens "
        "(multiset: a repeated prediction word counts once per reference occurrence); no number-word "
        "mapping", None,
        (("llava_med_tokens_closed", "LLaVA-Med tok. closed", "closed"),
         ("llava_med_tokens_open", "LLaVA-Med tok. open", "open")),
    ),
    "token_f1": Protocol(
        "token_f1", "Token F1", token_f1_scores,
        "SQuAD-style token F1 between normalised prediction and reference tokens (multiset overlap; "
        "1 when both are empty, 0 when only one is)", None,
        (("token_f1", "Token F1", "overall"),),
    ),
    "medgemma": Protocol(
        "medgemma", "MedGemma", medgemma_scores,
        f"meant to follow the MedGemma technical report (arXiv:2507.05201), but {MEDGEMMA_NOT_VERIFIED}: "
        "only its abstract could be read. Google's medgemma-4b-it model card (v1.0.1) names the metric "
        "'Tokenized F1' for SLAKE (radiology) and VQA-RAD (its 'balanced split', Yang et al. 2024, "
        "arXiv:2405.03162) and the MedGemma 1.5 card adds 'Accuracy (on closed subset)'; neither defines "
        "the tokenisation, the normalisation, the averaging or the closed subset, and neither mentions an "
        "open-question recall. Computed here on this project's normalisation: closed questions: accuracy "
        "(exact match); open questions: token recall of the reference tokens (this project's choice, not "
        "from the cards); extra token_f1: SQuAD-style multiset token F1 over every question (this "
        "project's reading of 'Tokenized F1'). Closed/open from the data's answer_type", MEDGEMMA,
        (("medgemma_f1", "MedGemma F1", "token_f1"), ("medgemma_closed", "MedGemma closed", "closed"),
         ("medgemma_open", "MedGemma open recall", "open")),
    ),
    "multimedeval": Protocol(
        "multimedeval", "MultiMedEval", multimedeval_scores,
        f"as MultiMedEval's VQA.evaluate computes it, on word SETS after clean_str ({VQA_EVAL_RULES}). "
        "A question is closed for MultiMedEval iff its cleaned reference is 'yes' or 'no' (it ignores "
        "the data's answer type; our closed/open columns split by the data's answer_type). Closed hit: "
        "recall of the reference set >= 0.4, a reference 'no' also accepting 'not'; open hit: token "
        "recall >= 0.75. Extras over every question: F1 (2pr/(p+r+1e-8)), recall, BLEU-1 "
        "(torchmetrics BLEUScore(n_gram=1), whitespace words, with brevity penalty); open_recall: "
        "mean recall of its open questions (openQuestionsRecall); closed_accuracy / open_accuracy: "
        "closedQuestionsAccuracy / openQuestionsAccuracy over ITS closed/open split", MULTIMEDEVAL,
        (("multimedeval_closed", "MME closed", "closed_accuracy"), ("multimedeval_open", "MME open", "open_accuracy"),
         ("multimedeval_f1", "MME F1", "f1"), ("multimedeval_bleu_1", "MME BLEU-1", "bleu_1")),
    ),
}
DEFAULT_PROTOCOL = "exact_match"


def get(name: str) -> Protocol:
    """The registered protocol ``name``; a ValueError names the known ones."""
    if name not in PROTOCOLS:
        raise ValueError(f"unknown VQA protocol {name!r}; choose one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def describe_all() -> dict[str, dict[str, object]]:
    """{name: label, rules, reference} of every protocol, as written into metrics JSONs."""
    return {name: protocol.describe() for name, protocol in PROTOCOLS.items()}
