"""Image cache stage: results/data/{dataset}/{split}.parquet →
``images_{size}.{split}.npy`` (uint8, shape (n_images, size, size, 3)) and
``images_{size}.{split}.ids.json`` (the image_id of each row of the array, in order).

Each unique image of the split is decoded once (``decode_rgb``), converted to RGB and resized
to a square ``size`` × ``size`` (bicubic, antialiased). Training and inference memory-map the
array, so no image is decoded inside a training loop.

8-bit rule (``HIGH_DEPTH_RULE``): PIL's ``convert("RGB")`` clips 16-bit and 32-bit integer
and float images at 255 (a 16-bit DICOM-derived PNG became almost white), so such images are
rescaled linearly from their own minimum..maximum to 0..255 and rounded; a constant image
becomes 0 and an image with NaN or infinite pixels is rejected. 16-bit RGB PNGs are opened by
PIL as 8-bit RGB already (their high bytes).
"""

from __future__ import annotations

import io
import itertools
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image
from tqdm.auto import tqdm

from medvqa.io import atomic_path, read_batches, read_json, write_json

log = logging.getLogger(__name__)


DECODE_CHUNK = 64  # images decoded (and held) at a time
HIGH_DEPTH_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")
HIGH_DEPTH_RULE = (
    "16-bit, 32-bit and float grayscale images are rescaled linearly from their own "
    "minimum..maximum to 0..255 (rounded; a constant image becomes 0; NaN/inf pixels are rejected)"
)


def to_8bit(img: Image.Image) -> Image.Image:
    """A high-depth grayscale image as 8-bit "L" by ``HIGH_DEPTH_RULE``; others unchanged."""
    if img.mode not in HIGH_DEPTH_MODES:
        return img
    pixels = np.asarray(img, dtype=np.float64)
    if not np.isfinite(pixels).all():
        raise ValueError(f"{img.mode} image with NaN or infinite pixels")
    low, high = float(pixels.min()), float(pixels.max())
    scaled = (pixels - low) * (255.0 / (high - low)) if high > low else np.zeros_like(pixels)
    return Image.fromarray(np.rint(scaled).astype(np.uint8))  # 2-D uint8 → mode "L"


def decode_rgb(data: bytes) -> Image.Image:
    """Encoded bytes → fully decoded RGB image. ``load()`` reads all pixel data, so a truncated
    file raises here (``Image.verify`` checks only headers and never decodes JPEG data)."""
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return to_8bit(img).convert("RGB")


def decode_resize(data: bytes, size: int) -> np.ndarray:
    """Encoded image bytes → uint8 array (size, size, 3)."""
    img = decode_rgb(data).resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)
    return np.asarray(img, dtype=np.uint8)


def _decode_named(image_id: str, data: bytes, size: int, where: str) -> np.ndarray:
    try:
        return decode_resize(data, size)
    except Exception as exc:  # PIL raises many types for corrupt files
        raise ValueError(f"{where} image_id={image_id}: cannot decode image ({type(exc).__name__}: {exc})") from exc


def _first_rows(parquet_path: str | Path) -> tuple[list[str], np.ndarray]:
    """(unique image ids in first-seen order, the row of each one's first appearance)."""
    ids = pq.read_table(parquet_path, columns=["image_id"]).column(0).to_pandas().astype(str)
    first = ~ids.duplicated()
    return ids[first].tolist(), np.flatnonzero(first.to_numpy())


def _unique_images(parquet_path: str | Path, rows: np.ndarray, batch_rows: int) -> Iterator[tuple[str, bytes]]:
    """(image_id, bytes) at the sorted positions ``rows``, read record batch by record batch."""
    start = 0
    for batch in read_batches(parquet_path, ["image_id", "image"], batch_rows):
        stop = start + batch.num_rows
        take = rows[np.searchsorted(rows, start):np.searchsorted(rows, stop)] - start
        ids, images = batch.column(0), batch.column(1)
        yield from ((ids[i].as_py(), images[i].as_py()) for i in take)
        start = stop


def _chunks(items: Iterator, n: int) -> Iterator[list]:
    while chunk := list(itertools.islice(items, n)):
        yield chunk


def build_image_cache(
    parquet_path: str | Path, size: int, npy_path: str | Path, ids_path: str | Path, threads: int = 1,
    batch_rows: int = 256,
) -> int:
    """Write the cache of one split; returns the number of unique images.

    Streams: encoded images are read ``batch_rows`` parquet rows at a time and the pixels are
    appended to the .npy file (a plain write, not a memory map: written pages of a map count as
    the process's resident memory until the map closes, i.e. the whole cache)."""
    ids, rows = _first_rows(parquet_path)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False,
              "shape": (len(ids), size, size, 3)}
    with atomic_path(npy_path) as tmp, open(tmp, "wb") as out:
        np.lib.format.write_array_header_1_0(out, header)
        # PIL releases the GIL while decoding and resizing, so threads scale here. Executor.map
        # submits its whole input at once: it gets one chunk at a time to keep memory bounded.
        progress = tqdm(total=len(ids), desc=f"images {Path(parquet_path).stem}")
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            for chunk in _chunks(_unique_images(parquet_path, rows, batch_rows), DECODE_CHUNK):
                for pixels in pool.map(lambda item: _decode_named(*item, size, str(parquet_path)), chunk):
                    out.write(pixels.tobytes())
                progress.update(len(chunk))
        progress.close()
    write_json(ids, ids_path)
    log.info("cached %d images at %dx%d from %s", len(ids), size, size, parquet_path)
    return len(ids)


def load_image_cache(npy_path: str | Path, ids_path: str | Path) -> tuple[np.ndarray, dict[str, int]]:
    """Memory-map a cache; returns (array (n, size, size, 3) uint8, image_id → row)."""
    cache = np.load(npy_path, mmap_mode="r")
    ids = read_json(ids_path)
    if len(ids) != len(cache):
        raise ValueError(f"{ids_path} lists {len(ids)} ids but {npy_path} holds {len(cache)} images")
    return cache, {image_id: i for i, image_id in enumerate(ids)}
