"""Image cache stage: results/data/{dataset}/{split}.parquet → the split's images, decoded and
resized once, in the form the dataset's ``image_cache`` key names (``medvqa.paths.image_cache``):

- ``raw``: ``images_{size}.{split}.npy`` (uint8, shape (n_images, size, size, 3)), memory-mapped,
  and ``images_{size}.{split}.ids.json`` (the image_id of each row of the array, in order);
- ``png``: ``images_{size}.{split}.png.arrow``, an Arrow IPC file with columns ``image_id``
  (string) and ``png`` (binary: the same uint8 pixels, PNG-encoded, lossless) in record batches of
  ``DECODE_CHUNK`` images; schema metadata ``image_size``. Arrow IPC rather than parquet: a memory
  map of it reads one image without decoding a whole row group;
- ``none``: no file; readers decode the split parquet's own encoded bytes with ``decode_resize``.

``load_image_cache`` reads all three alike: an array-like of (size, size, 3) uint8 images (``len``,
``[i]``, ``[a:b]``, ``shape``) and the image_id → index map, so readers never ask which kind.

Each unique image of the split is decoded once (``decode_rgb``), converted to RGB and resized
to a square ``size`` × ``size`` (bicubic, antialiased).

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
import os
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image
from tqdm.auto import tqdm

from medvqa import paths
from medvqa.io import atomic_path, read_batches, read_json, write_json

log = logging.getLogger(__name__)


DECODE_CHUNK = 64  # images decoded (and held) at a time
# zlib level of the png cache: at 448 px level 6 (PIL's default) took 3x the time of 3 for at most
# 5 % fewer bytes, and decoded no faster (bench/RESULTS.md, 2026-12-02 image cache kinds).
PNG_COMPRESS_LEVEL = 3
HELD_ROW_GROUPS = 4  # image_cache none: row groups of encoded images kept in memory by a reader
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


def decoded_images(
    parquet_path: str | Path, size: int, threads: int = 1, batch_rows: int = 256,
) -> Iterator[tuple[list[str], list[np.ndarray]]]:
    """(image ids, their (size, size, 3) uint8 pixels) of each unique image of the split in
    first-seen order, ``DECODE_CHUNK`` images at a time (encoded images are read ``batch_rows``
    parquet rows at a time, so memory stays bounded)."""
    _, rows = _first_rows(parquet_path)
    progress = tqdm(total=len(rows), desc=f"images {Path(parquet_path).stem}")
    # PIL releases the GIL while decoding and resizing, so threads scale here. Executor.map
    # submits its whole input at once: it gets one chunk at a time to keep memory bounded.
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for chunk in _chunks(_unique_images(parquet_path, rows, batch_rows), DECODE_CHUNK):
            pixels = list(pool.map(lambda item: _decode_named(*item, size, str(parquet_path)), chunk))
            yield [image_id for image_id, _ in chunk], pixels
            progress.update(len(chunk))
    progress.close()


def build_image_cache(
    parquet_path: str | Path, size: int, npy_path: str | Path, ids_path: str | Path, threads: int = 1,
    batch_rows: int = 256,
) -> int:
    """Write the raw cache of one split; returns the number of unique images.

    The pixels are appended to the .npy file (a plain write, not a memory map: written pages of
    a map count as the process's resident memory until the map closes, i.e. the whole cache)."""
    ids, _ = _first_rows(parquet_path)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False,
              "shape": (len(ids), size, size, 3)}
    with atomic_path(npy_path) as tmp, open(tmp, "wb") as out:
        np.lib.format.write_array_header_1_0(out, header)
        for _, pixels in decoded_images(parquet_path, size, threads, batch_rows):
            for image in pixels:
                out.write(image.tobytes())
    write_json(ids, ids_path)
    log.info("cached %d images at %dx%d from %s", len(ids), size, size, parquet_path)
    return len(ids)


def encode_png(pixels: np.ndarray) -> bytes:
    """(H, W, 3) uint8 → PNG bytes (lossless: ``decode_png`` gives the same array back). A grey
    image (three equal channels: most radiology) is stored as one channel: measured at 448 px,
    ~40 % fewer bytes and half the decoding time. Level ``PNG_COMPRESS_LEVEL`` (see there)."""
    grey = bool((pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all())
    image = Image.fromarray(np.ascontiguousarray(pixels[..., 0])) if grey else Image.fromarray(pixels, mode="RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8)


def build_png_cache(
    parquet_path: str | Path, size: int, arrow_path: str | Path, threads: int = 1, batch_rows: int = 256,
) -> int:
    """Write the png cache of one split (see the module docstring); returns the number of unique
    images. One record batch of ``DECODE_CHUNK`` images is held at a time."""
    schema = pa.schema([("image_id", pa.string()), ("png", pa.binary())], metadata={"image_size": str(size)})
    n = 0
    with atomic_path(arrow_path) as tmp, pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, schema) as out:
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:  # zlib releases the GIL too
            for ids, pixels in decoded_images(parquet_path, size, threads, batch_rows):
                encoded = list(pool.map(encode_png, pixels))
                out.write_batch(pa.record_batch([pa.array(ids, pa.string()), pa.array(encoded, pa.binary())],
                                                schema=schema))
                n += len(ids)
    log.info("cached %d PNG images at %dx%d from %s", n, size, size, parquet_path)
    return n


class EncodedImages:
    """Array-like view of encoded images, decoded on access: ``len``, ``shape``, ``[i]`` → (size,
    size, 3) uint8 and ``[a:b]`` / ``[index array]`` → (k, size, size, 3), as a memory-mapped raw
    cache reads. Subclasses give ``size``, ``ids`` and ``_image(i)``."""

    size: int
    ids: list[str]
    dtype = np.dtype(np.uint8)

    def _image(self, i: int) -> np.ndarray:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self), self.size, self.size, 3)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            i = int(key) + len(self) if key < 0 else int(key)
            if not 0 <= i < len(self):
                raise IndexError(f"image {key} of {len(self)}")
            return self._image(i)
        rows = range(len(self))[key] if isinstance(key, slice) else np.asarray(key).ravel()
        out = np.empty((len(rows), self.size, self.size, 3), dtype=np.uint8)
        for n, i in enumerate(rows):
            out[n] = self[int(i)]
        return out


class PngImages(EncodedImages):
    """A png cache (``build_png_cache``), memory-mapped: only the PNGs read are paged in."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        table = pa.ipc.open_file(pa.memory_map(self.path, "r")).read_all()
        self.size = int(table.schema.metadata[b"image_size"])
        self.ids = table.column("image_id").to_pylist()
        self._chunks = table.column("png").chunks
        self._starts = np.cumsum([0] + [len(c) for c in self._chunks])

    def _image(self, i: int) -> np.ndarray:
        chunk = int(np.searchsorted(self._starts, i, side="right")) - 1
        pixels = decode_png(self._chunks[chunk][i - self._starts[chunk]].as_buffer())
        if pixels.shape != (self.size, self.size, 3):
            raise ValueError(f"{self.path} image_id={self.ids[i]}: PNG of shape {pixels.shape}, not "
                             f"({self.size}, {self.size}, 3)")
        return pixels


class SplitImages(EncodedImages):
    """The split parquet's own encoded images (``image_cache: none``), decoded and resized on
    access by ``decode_resize``, as the raw cache was built. The image columns of the last
    ``HELD_ROW_GROUPS`` row groups read are kept: reading in image order reads each row group once;
    a shuffled epoch over a split of more row groups rereads them (the price of storing nothing)."""

    def __init__(self, parquet_path: str | Path, size: int):
        self.path, self.size = str(parquet_path), size
        self.ids, rows = _first_rows(parquet_path)
        meta = pq.ParquetFile(self.path).metadata
        starts = np.cumsum([0] + [meta.row_group(g).num_rows for g in range(meta.num_row_groups)])
        self._group = np.searchsorted(starts, rows, side="right") - 1
        self._offset = rows - starts[self._group]
        self._pid, self._file, self._held = -1, None, OrderedDict()

    def _images_of(self, group: int) -> pa.Array:
        # A forked DataLoader worker opens the file itself rather than share the parent's handle.
        if self._pid != os.getpid():
            self._pid, self._file, self._held = os.getpid(), pq.ParquetFile(self.path), OrderedDict()
        if group not in self._held:
            self._held[group] = self._file.read_row_group(group, columns=["image"]).column(0).combine_chunks()
            if len(self._held) > HELD_ROW_GROUPS:
                self._held.popitem(last=False)
        self._held.move_to_end(group)
        return self._held[group]

    def _image(self, i: int) -> np.ndarray:
        data = self._images_of(int(self._group[i]))[int(self._offset[i])].as_py()
        return _decode_named(self.ids[i], data, self.size, self.path)


def load_image_cache(
    images: str | Path, image_ids: str | Path, image_size: int | None = None,
) -> tuple[np.ndarray | EncodedImages, dict[str, int]]:
    """Open a split's images, of any kind (``medvqa.paths.cache_kind`` of ``images``); returns
    (array-like (n, size, size, 3) uint8, image_id → row). ``image_size`` is required for kind
    ``none`` (the split parquet holds no size) and, when given, checked against a cache."""
    kind = paths.cache_kind(images)
    if kind == "raw":
        cache = np.load(images, mmap_mode="r")
        ids = read_json(image_ids)
        if len(ids) != len(cache):
            raise ValueError(f"{image_ids} lists {len(ids)} ids but {images} holds {len(cache)} images")
    elif kind == "png":
        cache = PngImages(images)
        ids = cache.ids
    else:
        if image_size is None:
            raise ValueError(f"{images}: image_cache none reads the split parquet and needs the image_size")
        cache = SplitImages(images, image_size)
        ids = cache.ids
    if image_size is not None and cache.shape[1] != image_size:
        raise ValueError(f"{images} holds {cache.shape[1]} px images, not image_size {image_size}")
    return cache, {str(image_id): i for i, image_id in enumerate(ids)}
