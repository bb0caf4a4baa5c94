"""Answer normalisation: the rule every accuracy protocol relies on."""

import math

import pytest

from medvqa.evaluate.normalise import answer_tokens, caption_tokens, normalise


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("The left lung.", "left lung"),
        ("left-lung", "left lung"),
        ("  YES!  ", "yes"),
        ("An MRI", "mri"),
        ("2.5 cm", "2.5 cm"),
        ("1,000", "1000"),
        ("e.g. 3.", "e g 3"),
        ("theory", "theory"),  # articles only as whole words
        ("Ödem", "ödem"),
        ("Ｘ光", "x光"),  # NFKC folds the full-width letter
        ("肺，心脏", "肺 心脏"),  # Unicode punctuation
        ("", ""),
        (None, ""),
        (math.nan, ""),
    ],
)
def test_normalise(raw, expected):
    assert normalise(raw) == expected


def test_answer_tokens_are_words_of_normalised_text():
    assert answer_tokens("The  Right kidney, upper pole") == ["right", "kidney", "upper", "pole"]


def test_caption_tokens_drop_punctuation_but_keep_words():
    tokens = caption_tokens("Axial CT: a 2.5-cm mass (arrow).")
    assert tokens == ["axial", "ct", "a", "2", "5", "cm", "mass", "arrow"]
    assert caption_tokens(None) == []
