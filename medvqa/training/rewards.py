"""Rewards of GRPO training (``train.method: grpo``): plain, torch-free functions of one completion.

Each reward takes the generated answer text, the reference answer and its answer_type
(closed | open), whether the completion ended with an end-of-turn token, and the run's
``GrpoSpec`` (its scoring ``protocol``, a key of ``medvqa.evaluate.protocols.PROTOCOLS``, and
``max_answer_words``), and returns a float in [0, 1], or None
when it does not apply to the question (GRPO then leaves that reward out of the question's
weighted sum, and out of its mean in history.csv). ``train.grpo.rewards`` maps the names of
``REWARDS`` to their weights; the total reward of a completion is the weighted sum.
"""

from __future__ import annotations

from collections.abc import Callable

from medvqa.evaluate import protocols
from medvqa.evaluate.metrics import token_f1 as f1_of_tokens
from medvqa.evaluate.normalise import answer_tokens
from medvqa.training.spec import GrpoSpec

Reward = Callable[..., "float | None"]


def correctness(prediction: str, answer: str, answer_type: str, ended: bool, spec: GrpoSpec) -> float | None:
    """Closed questions: the protocol's per-question score of ``prediction`` (exact_match: 1 or 0);
    None on open questions (``token_f1`` scores those)."""
    if answer_type != "closed":
        return None
    return float(protocols.get(spec.protocol).score([prediction], [answer], ["closed"]).per_question[0])


def token_f1(prediction: str, answer: str, answer_type: str, ended: bool, spec: GrpoSpec) -> float | None:
    """Open questions: SQuAD-style token F1 of the normalised words (multiset overlap); None on
    closed questions."""
    if answer_type == "closed":
        return None
    return float(f1_of_tokens(answer_tokens(prediction), answer_tokens(answer)))


def answer_format(prediction: str, answer: str, answer_type: str, ended: bool, spec: GrpoSpec) -> float:
    """Half for ending the turn (an end-of-turn token before the length limit), half for the length:
    1 for a non-empty answer of at most ``spec.max_answer_words`` words, max / words beyond it
    (graded, so longer rambling scores lower), 0 when empty. A short, finished answer gets 1.0."""
    words = len(prediction.split())
    length = 0.0 if words == 0 else min(1.0, spec.max_answer_words / words)
    return 0.5 * float(ended) + 0.5 * length


REWARDS: dict[str, Reward] = {
    "correctness": correctness,
    "token_f1": token_f1,
    "format": answer_format,
}
