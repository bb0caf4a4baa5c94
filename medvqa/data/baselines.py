"""Blind baselines of a VQA dataset: how far one gets without looking at the image.

Used by the dataset summary stage (``summary.json``); both functions take unified VQA rows
(only the columns question, answer, answer_type are read) of the train split and of the
split to score, and return

    {"overall": float | None, "closed": float | None, "open": float | None,
     "n": int, "n_closed": int, "n_open": int, ...}

where an accuracy is None when the scored split has no row of that answer type. Answers are
compared after ``normalise_answer``; questions are grouped after ``normalise_question``.
"""

from __future__ import annotations

import re

import pandas as pd

from medvqa.data.answers import normalise_answer

_SPACES = re.compile(r"\s+")


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


def majority_baseline(train_df: pd.DataFrame, test_df: pd.DataFrame) -> dict:
    """Accuracy on ``test_df`` of always answering the most frequent train answer."""
    prediction = _most_frequent(train_df["answer"].map(normalise_answer))
    truth = test_df["answer"].map(normalise_answer)
    return {"prediction": prediction, **_accuracy(truth == prediction, test_df["answer_type"])}


def question_only_baseline(train_df: pd.DataFrame, test_df: pd.DataFrame) -> dict:
    """Accuracy on ``test_df`` of answering each question with its most frequent train answer.

    Questions are matched by their normalised text; a question never seen in training gets
    the overall majority answer (the share of such rows is returned as ``unseen``).
    """
    pairs = pd.DataFrame({
        "question": train_df["question"].map(normalise_question),
        "answer": train_df["answer"].map(normalise_answer),
    })
    counts = pairs.value_counts().rename("n").reset_index()
    # Per question: highest count first, then the alphabetically first answer (stable ties).
    best = counts.sort_values(["question", "n", "answer"], ascending=[True, False, True])
    lookup = best.drop_duplicates("question").set_index("question")["answer"]
    questions = test_df["question"].map(normalise_question)
    seen = questions.isin(lookup.index)
    fallback = _most_frequent(pairs["answer"])
    prediction = questions.map(lookup).where(seen, fallback)
    truth = test_df["answer"].map(normalise_answer)
    out = _accuracy(truth == prediction, test_df["answer_type"])
    out["unseen"] = float(1.0 - seen.mean()) if len(seen) else None
    return out
