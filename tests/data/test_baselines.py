"""Blind baselines against hand-computed accuracies."""

import pandas as pd
import pytest

from medvqa.data.baselines import majority_baseline, normalise_question, question_only_baseline


def rows(triples):
    return pd.DataFrame(triples, columns=["question", "answer", "answer_type"])


TRAIN = rows([
    ("Is it red?", "Yes", "closed"),
    ("is it  red", "yes.", "closed"),
    ("Is it red?", "no", "closed"),
    ("What colour is it?", "blue", "open"),
    ("What colour is it?", "Blue", "open"),
    ("What colour is it?", "red", "open"),
    ("Is it round?", "no", "closed"),
])
TEST = rows([
    ("IS IT RED?", "yes", "closed"),      # question-only: yes (2 of 3)  majority: blue / no tie → blue
    ("Is it red?", "No", "closed"),       # question-only: yes → wrong
    ("What colour is it?", "blue", "open"),  # question-only: blue → right; majority: right
    ("Is it round?", "no", "closed"),     # question-only: no → right
    ("How big is it?", "blue", "open"),   # unseen → falls back to the majority answer "blue"
])


def test_normalise_question():
    assert normalise_question("  Is it   RED ?! ") == "is it red"


def test_majority_baseline_hand_computed():
    # train answers: yes 2, no 2, blue 2, red 1 → three-way tie, alphabetically first is "blue"
    out = majority_baseline(TRAIN, TEST)
    assert out["prediction"] == "blue"
    assert out["overall"] == pytest.approx(2 / 5)
    assert out["closed"] == pytest.approx(0 / 3)
    assert out["open"] == pytest.approx(2 / 2)
    assert (out["n"], out["n_closed"], out["n_open"]) == (5, 3, 2)


def test_question_only_baseline_hand_computed():
    out = question_only_baseline(TRAIN, TEST)
    assert out["overall"] == pytest.approx(4 / 5)
    assert out["closed"] == pytest.approx(2 / 3)
    assert out["open"] == pytest.approx(2 / 2)
    assert out["unseen"] == pytest.approx(1 / 5)


def test_missing_answer_type_gives_none_and_extra_columns_are_ignored():
    closed_only = TEST[TEST["answer_type"] == "closed"].assign(image=b"x", question_id="q")
    out = question_only_baseline(TRAIN, closed_only)
    assert out["open"] is None and out["n_open"] == 0
    assert out["overall"] == pytest.approx(2 / 3)
    empty = question_only_baseline(TRAIN, TEST.iloc[:0])
    assert empty["overall"] is None and empty["unseen"] is None
