"""Pixels of the embedded demo dataset: real base images from installed wheels + drawn lesions.

Reads only files that ship inside the pydicom and scikit-image wheels (never the network):

======================  ==================  ===========  ============================================
source                  modality            organ        file
======================  ==================  ===========  ============================================
ct_head_a / ct_head_b   ct                  head         pydicom 693_J2KI.dcm, J2K_pixelrep_mismatch.dcm
ct_spine                ct                  spine        pydicom CT_small.dcm
mri_abdomen             mri                 abdomen      pydicom examples_overlay.dcm
us_heart                ultrasound          heart        pydicom examples_ybr_color.dcm (30 frames)
us_lymph_node           ultrasound          lymph node   pydicom examples_rgb_color.dcm (Doppler)
nm_skeleton             nuclear medicine    skeleton     pydicom JPEG2000.dcm (whole-body bone scan)
fundus_eye              fundus photography  eye          skimage.data.retina()
histology_colon         microscopy          colon        skimage.data.immunohistochemistry()
======================  ==================  ===========  ============================================

An image is fully described by an ``ImageSpec`` (base frame, view geometry, tone, lesions);
``render_image`` turns it into a uint8 (px, px, 3) array with no randomness of its own except
the noise seeded by the spec, so the same spec always gives the same pixels.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image

MAX_BASE_SIDE = 512
# A lesion is a bright disc inside a dark ring: visible on dark (CT, US, NM) and on bright
# (fundus, histology) backgrounds alike, and unlike any anatomy in the base images.
RING_FACTOR = 1.2
RING_VALUE = 0.04


@dataclasses.dataclass(frozen=True)
class BaseSource:
    """One real base image (or cine loop) and how to cut it before augmentation."""

    name: str
    modality: str
    organ: str
    origin: str  # "pydicom:<test file>" or "skimage:<data function>"
    box: tuple[int, int, int, int] | None = None  # (row0, row1, col0, col1): drops burnt-in text
    min_aspect: float = 0.0  # pad the short side up to this fraction of the long side
    scale: tuple[float, float] = (0.75, 1.0)  # view side as a fraction of the short side
    colour: bool = False
    frames: int = 1  # frames in the file (cine loops give several distinct base images)


SOURCES: tuple[BaseSource, ...] = (
    BaseSource("ct_head_a", "ct", "head", "pydicom:693_J2KI.dcm"),
    BaseSource("ct_head_b", "ct", "head", "pydicom:J2K_pixelrep_mismatch.dcm"),
    BaseSource("ct_spine", "ct", "spine", "pydicom:CT_small.dcm", scale=(0.65, 0.9)),
    BaseSource(
        "mri_abdomen", "mri", "abdomen", "pydicom:examples_overlay.dcm", min_aspect=1.0, scale=(0.65, 0.95)
    ),
    BaseSource(
        "us_heart", "ultrasound", "heart", "pydicom:examples_ybr_color.dcm", box=(15, 200, 80, 240), frames=30
    ),
    BaseSource(
        "us_lymph_node", "ultrasound", "lymph node", "pydicom:examples_rgb_color.dcm",
        box=(55, 168, 22, 298), scale=(0.9, 1.0), colour=True,
    ),
    BaseSource(
        "nm_skeleton", "nuclear medicine", "skeleton", "pydicom:JPEG2000.dcm", min_aspect=0.5, scale=(0.8, 1.0)
    ),
    BaseSource("fundus_eye", "fundus photography", "eye", "skimage:retina", scale=(0.8, 1.0), colour=True),
    BaseSource(
        "histology_colon", "microscopy", "colon", "skimage:immunohistochemistry", scale=(0.3, 0.7), colour=True
    ),
)
SOURCE_BY_NAME: Mapping[str, BaseSource] = {s.name: s for s in SOURCES}


@dataclasses.dataclass(frozen=True)
class Lesion:
    """A drawn finding; centre and radius are fractions of the image side (x to the right)."""

    x: float
    y: float
    radius: float

    @property
    def outer(self) -> float:
        return self.radius * RING_FACTOR


@dataclasses.dataclass(frozen=True)
class View:
    """Augmentation of the base frame; u_x, u_y in [0, 1] place the view inside the base."""

    scale: float
    u_x: float
    u_y: float
    angle: float  # degrees
    flip: bool
    gamma: float
    contrast: float
    brightness: float
    gains: tuple[float, float, float]  # per-channel colour gain (1.0 for greyscale sources)
    noise: float  # std of additive Gaussian noise, in [0, 1] intensity units
    noise_seed: int


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    """Everything needed to draw one demo image and to state its ground truth."""

    image_id: str
    split: str
    source: str
    frame: int
    view: View
    lesions: tuple[Lesion, ...]
    intensity: float  # lesion brightness

    @property
    def modality(self) -> str:
        return SOURCE_BY_NAME[self.source].modality

    @property
    def organ(self) -> str:
        return SOURCE_BY_NAME[self.source].organ

    @property
    def side(self) -> str | None:
        """'left' / 'right' half of the image holding every lesion, None without lesions."""
        if not self.lesions:
            return None
        sides = {"left" if lesion.x < 0.5 else "right" for lesion in self.lesions}
        if len(sides) != 1:
            raise ValueError(f"{self.image_id}: lesions on both sides")
        return sides.pop()


def _unit(values: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] between the 1st and 99.5th percentile of the non-padding pixels."""
    values = values.astype(np.float64)
    body = values[values > values.min()]
    lo, hi = np.percentile(body if body.size else values, (1.0, 99.5))
    return np.clip((values - lo) / max(hi - lo, 1e-6), 0.0, 1.0)


def _dicom_frames(filename: str) -> list[np.ndarray]:
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.pixels import apply_modality_lut

    path = get_testdata_file(filename, download=False)
    if path is None:
        raise FileNotFoundError(
            f"demo data: pydicom test file {filename!r} is not installed with pydicom "
            f"{pydicom.__version__}; install pydicom>=3.0 (its wheel bundles the file)"
        )
    ds = pydicom.dcmread(path)
    pixels = ds.pixel_array  # YBR colour is converted to RGB by pydicom
    frames = pixels if int(ds.get("NumberOfFrames", 1) or 1) > 1 else pixels[None]
    if int(ds.SamplesPerPixel) == 3:
        return [np.asarray(f, dtype=np.uint8) for f in frames]
    grey = [_unit(apply_modality_lut(f, ds)) for f in frames]
    return [np.repeat((g * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=2) for g in grey]


def _skimage_frames(function: str) -> list[np.ndarray]:
    from skimage import data

    # retina and immunohistochemistry are bundled in the wheel (no pooch download).
    return [np.asarray(getattr(data, function)(), dtype=np.uint8)[..., :3]]


def _prepare(frame: np.ndarray, source: BaseSource) -> np.ndarray:
    """Crop the box, pad to the minimum aspect, shrink so the long side is <= MAX_BASE_SIDE."""
    if source.box is not None:
        r0, r1, c0, c1 = source.box
        frame = frame[r0:r1, c0:c1]
    h, w = frame.shape[:2]
    pad_h = max(0, math.ceil(source.min_aspect * w) - h)
    pad_w = max(0, math.ceil(source.min_aspect * h) - w)
    frame = np.pad(frame, ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    h, w = frame.shape[:2]
    shrink = MAX_BASE_SIDE / max(h, w)
    if shrink < 1.0:
        size = (round(w * shrink), round(h * shrink))
        frame = np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.LANCZOS))
    return np.ascontiguousarray(frame)


def load_bases() -> dict[str, list[np.ndarray]]:
    """Every source's prepared frames: {source name: [uint8 (H, W, 3), ...]}."""
    bases = {}
    for source in SOURCES:
        kind, name = source.origin.split(":", 1)
        frames = _dicom_frames(name) if kind == "pydicom" else _skimage_frames(name)
        if len(frames) != source.frames:
            raise ValueError(
                f"demo data: {source.origin} has {len(frames)} frame(s), expected {source.frames}"
            )
        bases[source.name] = [_prepare(f, source) for f in frames]
    return bases


def _affine(base_hw: tuple[int, int], view: View, out: int, source: BaseSource) -> tuple[float, ...]:
    """PIL AFFINE coefficients mapping output pixels (out x out) to base pixels."""
    h, w = base_hw
    lo, hi = source.scale
    side = (lo + view.scale * (hi - lo)) * min(h, w)
    theta = math.radians(view.angle)
    cos, sin = math.cos(theta), math.sin(theta)
    # Keep the rotated view inside the base where it fits, so no fill shows at the corners.
    extent = side / 2 * (abs(cos) + abs(sin))
    cx = extent + view.u_x * (w - 2 * extent) if w > 2 * extent else w / 2
    cy = extent + view.u_y * (h - 2 * extent) if h > 2 * extent else h / 2
    k = side / out
    flip = -1.0 if view.flip else 1.0
    a, b, d, e = flip * k * cos, -k * sin, flip * k * sin, k * cos
    half = out / 2
    return (a, b, cx - (a + b) * half, d, e, cy - (d + e) * half)


def _tone(pixels: np.ndarray, view: View, colour: bool) -> np.ndarray:
    """Gamma, contrast, brightness, colour gain and noise; greyscale stays greyscale."""
    out = np.power(pixels, view.gamma) * view.contrast + view.brightness
    if colour:
        out = out * np.asarray(view.gains, dtype=np.float64)
    channels = 3 if colour else 1
    noise = np.random.default_rng(view.noise_seed).normal(0.0, view.noise, out.shape[:2] + (channels,))
    return np.clip(out + noise, 0.0, 1.0)


def _distance(lesion: Lesion, px: int) -> np.ndarray:
    """(px, px) distance in pixels from each pixel centre to the lesion centre."""
    coords = np.arange(px, dtype=np.float64) + 0.5
    return np.hypot(coords[None, :] - lesion.x * px, coords[:, None] - lesion.y * px)


def lesion_mask(lesion: Lesion, px: int) -> tuple[np.ndarray, np.ndarray]:
    """Anti-aliased coverage (px, px) in [0, 1] of the bright disc and of the disc + dark ring."""
    dist = _distance(lesion, px)
    disc = np.clip(lesion.radius * px - dist + 0.5, 0.0, 1.0)
    whole = np.clip(lesion.outer * px - dist + 0.5, 0.0, 1.0)
    return disc, whole


def _draw_lesions(pixels: np.ndarray, lesions: Sequence[Lesion], intensity: float) -> np.ndarray:
    px = pixels.shape[0]
    out = pixels
    for lesion in lesions:
        disc, whole = lesion_mask(lesion, px)
        rel = np.clip(_distance(lesion, px) / (lesion.radius * px), 0.0, 1.0)
        # Slightly brighter centre, like a contrast-enhancing nodule.
        core = intensity * (1.0 - 0.12 * rel**2)
        value = RING_VALUE * (whole - disc) + core * disc
        out = out * (1.0 - whole[..., None]) + value[..., None]
    return out


def render_image(spec: ImageSpec, bases: Mapping[str, Sequence[np.ndarray]], px: int) -> np.ndarray:
    """Draw ``spec`` as uint8 (px, px, 3): base view → tone jitter → lesions."""
    source = SOURCE_BY_NAME[spec.source]
    base = bases[spec.source][spec.frame]
    work = 2 * px  # render at twice the size, then shrink with a proper low-pass filter
    coeffs = _affine(base.shape[:2], spec.view, work, source)
    view = Image.fromarray(base).transform(
        (work, work), Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR
    )
    view = view.resize((px, px), Image.Resampling.LANCZOS)
    pixels = np.asarray(view, dtype=np.float64) / 255.0
    if not source.colour:
        pixels = pixels[..., :1]
    pixels = _draw_lesions(_tone(pixels, spec.view, source.colour), spec.lesions, spec.intensity)
    pixels = np.broadcast_to(pixels, (px, px, 3))
    return (np.clip(pixels, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
