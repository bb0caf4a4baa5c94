"""Provenance of a metrics JSON: which code, libraries, data, predictions and model gave the numbers.

Called by the scoring stage (``medvqa.evaluate.score``) for every metrics JSON. Reads the
data split and the predictions / captions parquet by content (parquet bytes carry writer
metadata, so equal data can differ byte for byte), package metadata through
``importlib.metadata`` (no library is imported to read its version: the scoring job never
loads torch), git (only when the code is a git checkout; never an error outside one), and,
when given, the model's run directory (state.json, best.safetensors) and config entry.
Everything recorded is deterministic (no timestamps, hosts or absolute paths), so two runs
of the same workflow, local or on a cluster, write equal JSONs.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

# Libraries whose version can change a number: the model stack and the scoring libraries.
LIBRARIES = (
    "torch", "transformers", "peft", "numpy", "pandas", "scipy",
    "nltk", "sacrebleu", "rouge-score", "pycocoevalcap",
)
# The split columns hashed (those present), by task; the first is the id the rows are sorted by.
SPLIT_FIELDS = {
    "vqa": ("question_id", "image_id", "question", "answer", "answer_type"),
    "caption": ("image_id", "caption"),
}
PREDICTION_FIELDS = {
    "vqa": ("question_id", "prediction", "confidence", "answer_prob", "samples"),
    "caption": ("image_id", "generated"),
}
FINGERPRINT_RULE = (
    "sha256 of the UTF-8 text of Python json.dumps(rows, ensure_ascii=False), rows = one list per row "
    "of the values of the fields named (null for missing), sorted by each row's own json.dumps text; "
    "short = its first 12 hex digits"
)
# Keys of a model entry's model: block that name a checkpoint (hub id or directory), per the config schema.
CHECKPOINT_KEYS = ("checkpoint", "vision", "lm")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
_CHUNK = 1 << 20


def library_versions(names: Sequence[str] = LIBRARIES) -> dict[str, str | None]:
    """{distribution: installed version or None} read from package metadata."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def project_version() -> str:
    """The version of the medvqa code that is running (the package's own, not an installed copy's)."""
    from medvqa import __version__

    return __version__


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def git_state(root: str | os.PathLike | None = None) -> dict[str, Any]:
    """{"commit", "dirty"} of the checkout holding the medvqa package; both None outside git.

    ``dirty``: tracked files differ from the commit (untracked files, e.g. results/, ignored).
    """
    root = Path(root) if root is not None else Path(__file__).resolve().parent.parent
    top = _git(root, "rev-parse", "--show-toplevel")
    # A package installed into a virtualenv that sits inside some other repository is not that repository's code.
    if not top or Path(top).resolve() != root.resolve():
        return {"commit": None, "dirty": None}
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return {"commit": _git(root, "rev-parse", "HEAD"), "dirty": None if status is None else bool(status)}


def _plain(value: Any) -> Any:
    """A parquet cell as a JSON value: arrays as lists, NaN / null as None, numpy scalars as Python."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value if isinstance(value, (bool, int, float)) else str(value)


def table_fingerprint(path: str | os.PathLike, fields: Sequence[str]) -> dict[str, Any]:
    """{"sha256", "short", "fields", "rows"} of the ``fields`` present in a parquet (FINGERPRINT_RULE)."""
    names = set(pq.read_schema(path).names)
    present = [f for f in fields if f in names]
    frame = pd.read_parquet(path, columns=present)
    rows = [[_plain(v) for v in row] for row in frame.itertuples(index=False, name=None)]
    rows.sort(key=lambda row: json.dumps(row, ensure_ascii=False))
    digest = hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode("utf-8")).hexdigest()
    return {"sha256": digest, "short": digest[:12], "fields": present, "rows": len(rows)}


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hub_cache_commit(repo_id: str, revision: str | None) -> str | None:
    """The commit a Hugging Face cache holds for ``repo_id`` at ``revision`` (default "main"), read
    from the cache's refs file (huggingface_hub's cache layout), or None when not cached here."""
    home = os.environ.get("HF_HOME", os.path.join(os.path.expanduser("~"), ".cache", "huggingface"))
    cache = Path(os.environ.get("HF_HUB_CACHE", os.path.join(home, "hub")))
    ref = cache / f"models--{repo_id.replace('/', '--')}" / "refs" / (revision or "main")
    try:
        return ref.read_text().strip() or None
    except OSError:
        return None


def checkpoint_identity(checkpoint: str, revision: str | None) -> dict[str, Any]:
    """A checkpoint named in the config: a local directory's weight files hashed, or a hub id
    with its configured revision ("not pinned" when none is configured) and the commit the
    local Hugging Face cache holds for it."""
    path = Path(checkpoint)
    if path.is_dir():
        weights = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
        hashes = {p.relative_to(path).as_posix(): file_sha256(p) for p in weights}
        return {"id": checkpoint, "kind": "directory", "weights_sha256": hashes}
    # Hub ids are "name" or "org/name"; anything else names a local path that is not there now.
    if checkpoint.count("/") > 1 or checkpoint.startswith((".", "/", "~")):
        return {"id": checkpoint, "kind": "local path, absent when scored (not hashed)"}
    return {
        "id": checkpoint, "kind": "hub id", "revision": revision or "not pinned (the hub's default branch)",
        "cached_commit": hub_cache_commit(checkpoint, revision),
    }


def model_provenance(run: Mapping[str, Any]) -> dict[str, Any]:
    """What identifies the model behind the predictions, from the scoring rule's ``run`` params.

    ``run``: {"model", "seed", "run_dir" (results/models/...), "entry" (the model's config
    entry)}, any of them optional. Reads run_dir/state.json and best.safetensors when present.
    """
    entry = run.get("entry") or {}
    model = entry.get("model") or {}
    revision = model.get("revision")
    checkpoints = {
        key: checkpoint_identity(value, revision)
        for key, value in sorted(model.items())
        if isinstance(value, str) and key in CHECKPOINT_KEYS
    }
    out = {
        "name": run.get("model"),
        "seed": run.get("seed"),
        "family": entry.get("family"),
        "checkpoints": checkpoints,
        "prompt": model.get("prompt"),
        "decoding": entry.get("generate") or entry.get("caption"),
    }
    run_dir = Path(run["run_dir"]) if run.get("run_dir") else None
    if run_dir is not None and (run_dir / "state.json").is_file():
        out["state_sha256"] = file_sha256(run_dir / "state.json")
        weights = run_dir / "best.safetensors"
        out["weights_sha256"] = file_sha256(weights) if weights.is_file() else "none (zero-shot: no trained weights)"
    return out


def provenance(
    task: str, data_path: str | os.PathLike, predictions_path: str | os.PathLike, run: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The "provenance" block of a metrics JSON (``task``: "vqa" or "caption")."""
    return {
        "project": {"name": "medvqa", "version": project_version(), **git_state()},
        "libraries": library_versions(),
        "split": table_fingerprint(data_path, SPLIT_FIELDS[task]),
        "predictions": table_fingerprint(predictions_path, PREDICTION_FIELDS[task]),
        "fingerprint_rule": FINGERPRINT_RULE,
        "model": model_provenance(run) if run else None,
    }
