"""The embedded offline demo dataset (source ``demo``): generated rows, no download.

Writes nothing itself; ``make_demo`` returns unified rows (see ``medvqa.data.schema``) that the
import stage writes to ``results/data/{dataset}/source/{split}.parquet`` (the import_dataset rule
passes ``load_demo``, the ``demo`` source's loader, to ``medvqa.data.prepare.import_dataset``):

* task ``vqa``: question_id (``demo-q000123``), image_id (``demo-i0042``), image (PNG bytes,
  RGB, image_px x image_px), question, answer, answer_type, split, modality, organ, content_type
* task ``caption``: image_id, image, caption, split — the same images and splits as ``vqa``
  for the same seed and size.

Images are real anatomy from installed wheels (``medvqa.demo.assets``) with bright, dark-ringed
round lesions drawn in, so every answer is visible in the pixels. Splits are by image. Within
each split the answers of every question template are balanced (yes/no 50/50 for each value
asked about; modality, count and side uniform), so the question alone does not give the
answer away. Same seed → byte-identical rows.
"""

from __future__ import annotations

import dataclasses
import io
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from PIL import Image

from medvqa.demo.assets import SOURCES, ImageSpec, Lesion, View, load_bases, render_image
from medvqa.spec import ConfigError, check_choice

SPLITS = ("train", "val", "test")
MODALITIES = tuple(dict.fromkeys(s.modality for s in SOURCES))
ORGANS = tuple(dict.fromkeys(s.organ for s in SOURCES))
SIDES = ("left", "right")
LESION_COUNTS = (1, 2, 3)
# Independent random streams, so that captions and questions never shift the images.
_LAYOUT, _QUESTIONS, _CAPTIONS = 0, 1, 2
# Lesion placement, as fractions of the image side: a lesion never touches the border, the
# midline (its side must be unambiguous) or another lesion (it must be countable).
_RADIUS = (0.08, 0.11)
_MARGIN, _MIDLINE_GAP, _GAP = 0.04, 0.03, 0.03

MODALITY_NAMES = {
    "ct": ("CT", "a CT scan", "Axial CT slice"),
    "mri": ("MRI", "an MRI scan", "Axial MRI slice"),
    "ultrasound": ("ultrasound", "an ultrasound image", "Ultrasound image"),
    "nuclear medicine": ("nuclear medicine", "a nuclear medicine scan", "Bone scintigram"),
    "fundus photography": ("fundus photography", "a fundus photograph", "Colour fundus photograph"),
    "microscopy": ("microscopy", "a microscopy image", "Immunohistochemistry micrograph"),
}  # modality answer → (name, noun phrase, caption opening)
ORGAN_PHRASES = {
    "head": "of the head", "spine": "at the level of the spine", "abdomen": "of the upper abdomen",
    "heart": "of the heart", "lymph node": "of a lymph node", "skeleton": "of the skeleton",
    "eye": "of the retina", "colon": "of colonic mucosa",
}


@dataclasses.dataclass(frozen=True)
class Template:
    """A question kind; ``lesions_only`` templates are asked only about images with lesions."""

    key: str
    answer_type: str
    content_type: str
    phrasings: tuple[str, ...]
    lesions_only: bool = False


TEMPLATES: tuple[Template, ...] = (
    Template("presence", "closed", "abnormality", (
        "Is there a lesion in this image?", "Are any lesions visible?", "Does this image show a lesion?")),
    Template("count", "open", "quantity", (
        "How many lesions are there?", "How many lesions are visible?", "What is the number of lesions?"),
        lesions_only=True),
    Template("side", "open", "position", (
        "Which side of the image is affected?", "Is the finding on the left or the right side?",
        "In which half of the image is the abnormality?"), lesions_only=True),
    Template("side_check", "closed", "position", (
        "Is the {side} side of the image affected?", "Is there a lesion in the {side} half of the image?",
        "Are the findings on the {side} side?"), lesions_only=True),
    Template("modality", "open", "modality", (
        "What imaging modality is this?", "Which modality was used to acquire this image?",
        "What type of imaging is shown?")),
    Template("modality_check", "closed", "modality", (
        "Is this {noun}?", "Is the imaging modality {name}?", "Was this image acquired with {name}?")),
    Template("organ", "open", "organ", (
        "Which organ is shown?", "What part of the body is imaged?",
        "Which body region does this image show?")),
    Template("organ_check", "closed", "organ", (
        "Does this image show the {organ}?", "Is the {organ} shown here?",
        "Is this an image of the {organ}?")),
)
_CHECKED = {"side_check": SIDES, "modality_check": MODALITIES, "organ_check": ORGANS}


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, stream]))


def _balanced(values: Sequence, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` values cycling through ``values`` (so each is equally frequent), shuffled."""
    return rng.permutation(np.resize(np.asarray(values, dtype=object), n))


def _split_sizes(n_images: int, fractions: Sequence[float]) -> dict[str, int]:
    train, val = (int(round(f * n_images)) for f in fractions[:2])
    return {"train": train, "val": val, "test": n_images - train - val}


def _place_lesions(count: int, side: str, rng: np.random.Generator) -> tuple[Lesion, ...]:
    """``count`` non-touching lesions, all in the ``side`` half; rejection sampling."""
    for _ in range(1000):
        lesions: list[Lesion] = []
        for _ in range(count):
            radius = float(rng.uniform(*_RADIUS))
            candidate = Lesion(0.0, 0.0, radius)
            x = rng.uniform(_MARGIN + candidate.outer, 0.5 - _MIDLINE_GAP - candidate.outer)
            y = rng.uniform(_MARGIN + candidate.outer, 1.0 - _MARGIN - candidate.outer)
            candidate = Lesion(float(x if side == "left" else 1.0 - x), float(y), radius)
            too_close = (
                math.hypot(candidate.x - other.x, candidate.y - other.y) < candidate.outer + other.outer + _GAP
                for other in lesions
            )
            if any(too_close):
                break
            lesions.append(candidate)
        if len(lesions) == count:
            return tuple(lesions)
    raise RuntimeError(f"could not place {count} lesions on the {side} side")


def _view(colour: bool, rng: np.random.Generator) -> View:
    return View(
        scale=float(rng.random()), u_x=float(rng.random()), u_y=float(rng.random()),
        angle=float(rng.uniform(-12.0, 12.0)), flip=bool(rng.random() < 0.5),
        gamma=float(math.exp(rng.uniform(-0.3, 0.3))), contrast=float(rng.uniform(0.85, 1.15)),
        brightness=float(rng.uniform(-0.06, 0.06)),
        gains=tuple(float(g) for g in rng.uniform(0.93, 1.07, 3)) if colour else (1.0, 1.0, 1.0),
        noise=float(rng.uniform(0.0, 0.03)), noise_seed=int(rng.integers(2**31)),
    )


def _split_layout(ids: list[str], split: str, rng: np.random.Generator) -> list[ImageSpec]:
    """Specs of one split, with modality, presence, count and side balanced inside it."""
    n = len(ids)
    modalities = _balanced(MODALITIES, n, rng)
    present = _balanced((False, True), n, rng)
    counts = iter(_balanced(LESION_COUNTS, int(present.sum()), rng))
    sides = iter(_balanced(SIDES, int(present.sum()), rng))
    organ_of = {}
    for modality in MODALITIES:
        members = np.flatnonzero(modalities == modality)
        organs = tuple(dict.fromkeys(s.organ for s in SOURCES if s.modality == modality))
        organ_of.update(zip(members.tolist(), _balanced(organs, len(members), rng)))
    specs = []
    for i, image_id in enumerate(ids):
        choices = [s for s in SOURCES if s.modality == modalities[i] and s.organ == organ_of[i]]
        source = choices[int(rng.integers(len(choices)))]
        lesions = _place_lesions(int(next(counts)), str(next(sides)), rng) if present[i] else ()
        specs.append(ImageSpec(
            image_id=image_id, split=split, source=source.name, frame=int(rng.integers(source.frames)),
            view=_view(source.colour, rng), lesions=lesions, intensity=float(rng.uniform(0.85, 1.0)),
        ))
    return specs


def demo_layout(
    seed: int = 0, n_images: int = 300, split_fractions: Sequence[float] = (0.7, 0.15, 0.15)
) -> list[ImageSpec]:
    """The ground truth of every demo image, in image_id order (no pixels yet)."""
    rng = _rng(seed, _LAYOUT)
    sizes = _split_sizes(n_images, split_fractions)
    split_of = rng.permutation(np.repeat(SPLITS, [sizes[s] for s in SPLITS]))
    ids = [f"demo-i{i:04d}" for i in range(n_images)]
    specs = {}
    for split in SPLITS:
        members = [ids[i] for i in np.flatnonzero(split_of == split)]
        specs.update({s.image_id: s for s in _split_layout(members, split, rng)})
    return [specs[i] for i in ids]


def _balanced_asks(
    truth: Sequence[str], values: Sequence[str], rng: np.random.Generator
) -> tuple[list[str], list[bool]]:
    """Which value each closed question asks about, and whether the answer is yes.

    Half of the items of each true value get "yes" (asked about their own value); the other
    half are asked about a wrong value drawn from that same pool of true values, so for every
    asked value yes and no are equally frequent and the question text gives nothing away.
    """
    truth_arr = np.asarray(truth, dtype=object)
    yes = np.zeros(len(truth_arr), dtype=bool)
    for value in sorted(set(truth)):
        members = rng.permutation(np.flatnonzero(truth_arr == value))
        half = len(members) // 2 + int(len(members) % 2 == 1 and rng.random() < 0.5)
        yes[members[:half]] = True
    no = np.flatnonzero(~yes)
    asked = truth_arr.copy()
    # A random permutation of the "no" items' own values keeps every value's share; items that
    # drew their own value swap with a random partner for which the swap fixes both.
    asked[no] = truth_arr[rng.permutation(no)]
    for i in no:
        if asked[i] != truth_arr[i]:
            continue
        partners = no[(asked[no] != truth_arr[i]) & (truth_arr[no] != asked[i])]
        if len(partners):
            j = partners[int(rng.integers(len(partners)))]
            asked[i], asked[j] = asked[j], asked[i]
        else:  # one value holds more than half of the pool: no permutation avoids it
            others = [v for v in values if v != truth_arr[i]]
            asked[i] = others[int(rng.integers(len(others)))]
    return [str(a) for a in asked], yes.tolist()


def _template_rows(template: Template, specs: Sequence[ImageSpec], rng: np.random.Generator) -> list[dict]:
    specs = [s for s in specs if s.lesions or not template.lesions_only]
    truth = {
        "presence": ["yes" if s.lesions else "no" for s in specs],
        "count": [str(len(s.lesions)) for s in specs],
        "side": [s.side for s in specs], "side_check": [s.side for s in specs],
        "modality": [s.modality for s in specs], "modality_check": [s.modality for s in specs],
        "organ": [s.organ for s in specs], "organ_check": [s.organ for s in specs],
    }[template.key]
    asked, answers = list(truth), list(truth)
    if template.key in _CHECKED:
        asked, yes = _balanced_asks(truth, _CHECKED[template.key], rng)
        answers = ["yes" if y else "no" for y in yes]
    rows = []
    for spec, value, answer in zip(specs, asked, answers):
        name, noun, _ = MODALITY_NAMES.get(value, ("", "", ""))
        phrasing = template.phrasings[int(rng.integers(len(template.phrasings)))]
        rows.append({
            "image_id": spec.image_id, "template": template.key,
            "question": phrasing.format(side=value, organ=value, name=name, noun=noun),
            "answer": answer, "answer_type": template.answer_type, "split": spec.split,
            "modality": spec.modality, "organ": spec.organ, "content_type": template.content_type,
        })
    return rows


def _vqa_frame(specs: Sequence[ImageSpec], images: dict[str, bytes], seed: int) -> pd.DataFrame:
    rng = _rng(seed, _QUESTIONS)
    rows = [
        row
        for split in SPLITS
        for template in TEMPLATES
        for row in _template_rows(template, [s for s in specs if s.split == split], rng)
    ]
    order = {t.key: i for i, t in enumerate(TEMPLATES)}
    rows.sort(key=lambda r: (r["image_id"], order[r["template"]]))
    frame = pd.DataFrame(rows).drop(columns="template")
    frame.insert(0, "question_id", [f"demo-q{i:06d}" for i in range(len(frame))])
    frame.insert(2, "image", frame["image_id"].map(images))
    return frame


def caption_of(spec: ImageSpec, rng: np.random.Generator) -> str:
    """One varied sentence describing the modality, region and the visible lesions."""
    opening = MODALITY_NAMES[spec.modality][2]
    region = ORGAN_PHRASES[spec.organ]
    lower = opening[0].lower() + opening[1:]
    n = len(spec.lesions)
    if n == 0:
        phrasings = (
            f"{opening} {region} without visible lesions.",
            f"{opening} {region}; no lesion is seen.",
            f"Normal-appearing {lower} {region} with no focal lesion.",
        )
    else:
        count, plural, verb = ("one", "two", "three")[n - 1], "s" if n > 1 else "", "are" if n > 1 else "is"
        phrasings = (
            f"{opening} {region} with {count} bright lesion{plural} in the {spec.side} half of the image.",
            f"{opening} {region}; {count} round lesion{plural} {verb} visible on the {spec.side} side.",
            f"{count.capitalize()} well-defined bright lesion{plural} in the {spec.side} half "
            f"of this {lower} {region}.",
        )
    return phrasings[int(rng.integers(len(phrasings)))]


def _caption_frame(specs: Sequence[ImageSpec], images: dict[str, bytes], seed: int) -> pd.DataFrame:
    rng = _rng(seed, _CAPTIONS)
    return pd.DataFrame({
        "image_id": [s.image_id for s in specs],
        "image": [images[s.image_id] for s in specs],
        "caption": [caption_of(s, rng) for s in specs],
        "split": [s.split for s in specs],
    })


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _check_arguments(n_images: int, task: str, image_px: int, split_fractions: Sequence[float]) -> None:
    where = "demo source"
    check_choice(where, "task", task, ("vqa", "caption"))
    fractions = list(split_fractions)
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ConfigError(
            f"{where}: split_fractions={fractions!r} must be 3 non-negative numbers summing to 1"
        )


def make_demo(
    seed: int = 0, n_images: int = 300, task: str = "vqa", image_px: int = 128,
    split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
) -> pd.DataFrame:
    """All demo rows of every split (column ``split``), VQA or caption rows per ``task``.

    About 6.5 questions per image (8 templates; count and side ones only when a lesion is
    present). Same arguments → byte-identical frame; another seed → other images.
    """
    _check_arguments(n_images, task, image_px, split_fractions)
    specs = demo_layout(seed, n_images, split_fractions)
    bases = load_bases()
    images = {s.image_id: _png(render_image(s, bases, image_px)) for s in specs}
    if task == "caption":
        return _caption_frame(specs, images, seed)
    return _vqa_frame(specs, images, seed)


def load_demo(spec, dataset: str) -> pd.DataFrame:
    """The ``demo`` source's loader: ``make_demo`` with a ``medvqa.data.sources.DemoSourceSpec``'s
    options (``dataset`` is unused: the rows carry no dataset name)."""
    return make_demo(seed=spec.seed, n_images=spec.n_images, task=spec.task, image_px=spec.image_px)
