"""Answer normalisation of the VQA evaluation scripts that LLaVA-Med and MultiMedEval reuse.

Used by the LLaVA-Med and MultiMedEval protocols (``medvqa.evaluate.protocols``). Both
references carry the same function, descended from the VQA challenge's evaluation script:
LLaVA-Med ``llava/eval/eval_metrics/glossary.py`` ``normalize_word`` (commit 356ba55) and
MultiMedEval ``multimedeval/utils.py`` ``clean_str`` (commit e06fe64, identical except that
it lower-cases first). This module re-implements that behaviour, quirks included, so that
our numbers equal theirs on the same strings:

- 21 punctuation characters (not ``.``, ``'``, ``:``) are deleted when the text contains a
  digit-comma-digit anywhere or the character stands next to a space, else replaced by a
  space; the test is made on the text as it was before any replacement.
- ``.`` not followed by a digit is deleted, at most 32 times: the script passes
  ``re.UNICODE`` (= 32) as ``re.sub``'s positional ``count`` argument.
- Words "none", "zero", "one" ... "ten" become digits; "a", "an", "the" are dropped; about
  130 apostrophe-less contractions ("dont") gain their apostrophe ("don't"); a few table
  keys are capitalised ("Im", "Ive") and so never match lower-cased text.
- Every remaining "," is deleted. Nothing else (no Unicode folding, no accent removal).
"""

from __future__ import annotations

import re

PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!")
NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}
ARTICLES = frozenset({"a", "an", "the"})
# The reference's contraction table, written as "key=value" pairs (data, not code).
_CONTRACTION_PAIRS = """
aint=ain't arent=aren't cant=can't couldve=could've couldnt=couldn't couldn'tve=couldn't've
couldnt've=couldn't've didnt=didn't doesnt=doesn't dont=don't hadnt=hadn't hadnt've=hadn't've
hadn'tve=hadn't've hasnt=hasn't havent=haven't hed=he'd hed've=he'd've he'dve=he'd've hes=he's
howd=how'd howll=how'll hows=how's Id've=I'd've I'dve=I'd've Im=I'm Ive=I've isnt=isn't itd=it'd
itd've=it'd've it'dve=it'd've itll=it'll let's=let's maam=ma'am mightnt=mightn't
mightnt've=mightn't've mightn'tve=mightn't've mightve=might've mustnt=mustn't mustve=must've
neednt=needn't notve=not've oclock=o'clock oughtnt=oughtn't ow's'at='ow's'at 'ows'at='ow's'at
'ow'sat='ow's'at shant=shan't shed've=she'd've she'dve=she'd've she's=she's shouldve=should've
shouldnt=shouldn't shouldnt've=shouldn't've shouldn'tve=shouldn't've somebody'd=somebodyd
somebodyd've=somebody'd've somebody'dve=somebody'd've somebodyll=somebody'll somebodys=somebody's
someoned=someone'd someoned've=someone'd've someone'dve=someone'd've someonell=someone'll
someones=someone's somethingd=something'd somethingd've=something'd've
something'dve=something'd've somethingll=something'll thats=that's thered=there'd
thered've=there'd've there'dve=there'd've therere=there're theres=there's theyd=they'd
theyd've=they'd've they'dve=they'd've theyll=they'll theyre=they're theyve=they've twas='twas
wasnt=wasn't wed've=we'd've we'dve=we'd've weve=we've werent=weren't whatll=what'll
whatre=what're whats=what's whatve=what've whens=when's whered=where'd wheres=where's
whereve=where've whod=who'd whod've=who'd've who'dve=who'd've wholl=who'll whos=who's
whove=who've whyll=why'll whyre=why're whys=why's wont=won't wouldve=would've wouldnt=wouldn't
wouldnt've=wouldn't've wouldn'tve=wouldn't've yall=y'all yall'll=y'all'll y'allll=y'all'll
yall'd've=y'all'd've y'alld've=y'all'd've y'all'dve=y'all'd've youd=you'd youd've=you'd've
you'dve=you'd've youll=you'll youre=you're youve=you've
"""
CONTRACTIONS = dict(pair.split("=", 1) for pair in _CONTRACTION_PAIRS.split())
_DIGIT_COMMA_DIGIT = re.compile(r"\d,\d")
_PERIOD = re.compile(r"\.(?!\d)")
# re.UNICODE == 32, passed by the reference where re.sub expects ``count``.
_PERIOD_LIMIT = 32

RULES = (
    "the VQA-challenge normalisation of LLaVA-Med's glossary.normalize_word / MultiMedEval's "
    "clean_str: 21 punctuation marks deleted (if next to a space or if the text has a "
    "digit,digit) or else turned into spaces; '.' not before a digit deleted (at most 32); "
    "number words none/zero..ten to digits; articles a/an/the dropped; apostrophe-less "
    "contractions restored; remaining ',' deleted; whitespace-split words"
)


def vqa_eval_normalise(text: str) -> str:
    """``text`` normalised as the reference ``normalize_word(text)`` returns it (no lower-casing first)."""
    spaced = text
    has_digit_comma = _DIGIT_COMMA_DIGIT.search(text) is not None
    for mark in PUNCTUATION:
        glued = has_digit_comma or (mark + " ") in text or (" " + mark) in text
        spaced = spaced.replace(mark, "" if glued else " ")
    spaced = _PERIOD.sub("", spaced, count=_PERIOD_LIMIT)
    words = [NUMBER_WORDS.get(w, w) for w in spaced.lower().split()]
    words = [CONTRACTIONS.get(w, w) for w in words if w not in ARTICLES]
    return " ".join(words).replace(",", "")


def word_counts(text: str) -> dict[str, int]:
    """Unigram counts as the reference's ``split_sentence(text, 1)`` gives them (lower, split)."""
    counts: dict[str, int] = {}
    for word in text.lower().strip().split():
        counts[word] = counts.get(word, 0) + 1
    return counts
