"""Atomic file and directory outputs shared by every stage.

A stage writes to a temporary file (``atomic_path``) or directory (``atomic_dir``, for
``save_pretrained`` folders) beside the target and renames it into place only when the write
finished, so a job killed half-way never leaves an output that looks complete (Snakemake would
otherwise treat a truncated parquet as up to date on some filesystems).

Temporaries are named ``.<name>.<host>-<pid>.<random>.tmp``. A failed write removes its own; one
killed outright (kill -9, OOM) cannot, so the next write of the same output removes those whose
process is gone (same host, pid no longer running), files and directories alike. Those of live
processes and of other hosts (a shared filesystem) are left alone.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import re
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger(__name__)


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _tmp_prefix(path: Path) -> str:
    """``.<name>.<host>-<pid>.``: the start of this process's temporaries of ``path``."""
    return f".{path.name}.{_host()}-{os.getpid()}."


def _remove(path: Path) -> None:
    """Delete a file, symbolic link or directory tree (links inside are removed, not followed)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def remove_stale_tmp(path: str | os.PathLike) -> list[Path]:
    """Remove temporary files and directories of ``path`` left by killed writers on this host;
    returns them."""
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(?P<host>.+)-(?P<pid>\d+)\.\w+\.tmp")
    removed = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        match = pattern.fullmatch(tmp.name)
        if match and match["host"] == _host() and not _running(int(match["pid"])):
            _remove(tmp)
            removed.append(tmp)
    if removed:
        log.info("removed %d temporary file(s) or folder(s) of killed writes of %s", len(removed), path)
    return removed


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` on clean exit."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(path)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        # mkstemp creates 0600 files; outputs get the permissions of any new file.
        tmp.chmod(0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a new empty temporary directory next to ``path``; on clean exit it becomes ``path``.

    Everything the caller writes into the yielded directory (e.g. a model's and its processor's
    ``save_pretrained``) appears at ``path`` together or not at all; on an exception the
    temporary directory is deleted and an existing ``path`` is left as it was. One writer of
    ``path`` at a time (Snakemake runs one job per output).

    An existing ``path`` (directory, file or link; a link is replaced, its target untouched) is
    replaced in two renames: it moves aside to a temporary name, the new directory moves in,
    then the old one is deleted, so no stale file of the old directory survives. A process
    killed between the two renames leaves no ``path`` (a missing output, which Snakemake
    rebuilds), never a mix of old and new files; killed after them, it leaves the complete new
    ``path``. Either way the old directory stays under its temporary name until the next write
    of ``path`` removes it with the killed writer's other temporaries (``remove_stale_tmp``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(path)
    tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(path), suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        # mkdtemp creates 0700 directories; outputs get the permissions of any new directory.
        tmp.chmod(0o777 & ~_umask())
        _rename_over(tmp, path)
    finally:
        _remove(tmp)


def _rename_over(new: Path, path: Path) -> None:
    """Move directory ``new`` to ``path``, replacing whatever is there (see ``atomic_dir``)."""
    if not os.path.lexists(path):
        os.rename(new, path)
        return
    old = path.with_name(f"{_tmp_prefix(path)}{os.urandom(4).hex()}old.tmp")
    os.rename(path, old)
    os.rename(new, path)
    _remove(old)


def atomic_symlink(target: str | os.PathLike, path: str | os.PathLike) -> None:
    """Make ``path`` a symbolic link to ``target`` (relative to ``path``'s folder), replacing
    ``path`` atomically; raises OSError where the filesystem has no symbolic links."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(path)
    tmp = path.with_name(f"{_tmp_prefix(path)}{os.urandom(4).hex()}.tmp")
    try:
        os.symlink(os.path.relpath(Path(target).resolve(), path.parent.resolve()), tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet(df: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


# Parquet written batch by batch (data splits, tokens). The dictionary page may hold a whole
# row group's distinct values: a VQA row group then stores each image once, not once per
# question (pyarrow's 1 MB default falls back to one copy per row after ~20 images).
PARQUET_OPTIONS = {"dictionary_pagesize_limit": 1 << 27}


def read_batches(
    path: str | os.PathLike, columns: list[str] | None = None, batch_rows: int = 256
) -> Iterator[pa.RecordBatch]:
    """Record batches of ``batch_rows`` rows of a parquet file, in order, one row group at a time.

    ``ParquetFile.iter_batches`` over the whole file reads ahead: its peak heap grew with the
    file (measured: 181 MB at 750 rows, 310 MB at 3,000 rows of 64 kB images); per row group it
    stays at one row group (155 and 153 MB). A row group is the smallest unit read."""
    source = pq.ParquetFile(path)
    for group in range(source.num_row_groups):
        yield from source.iter_batches(batch_size=batch_rows, row_groups=[group], columns=columns)


class BatchWriter:
    """Pandas frames of one schema appended to a parquet file, one row group per frame.

    The schema (and pandas metadata) comes from the first frame; a column that is all null in it
    is typed as string, the type every text column of this project has. ``attrs`` are stored as
    pandas stores ``DataFrame.attrs``, so ``pd.read_parquet`` restores them."""

    def __init__(self, path: Path, attrs: dict | None = None) -> None:
        self.path, self.attrs, self.rows = path, dict(attrs or {}), 0
        self._writer: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None

    def write(self, df: pd.DataFrame) -> None:
        if self._writer is None:
            schema = pa.Schema.from_pandas(df, preserve_index=False)
            for i, field in enumerate(schema):
                if pa.types.is_null(field.type):
                    schema = schema.set(i, field.with_type(pa.large_string()))
            if self.attrs:
                schema = schema.with_metadata({**schema.metadata, b"PANDAS_ATTRS": json.dumps(self.attrs).encode()})
            self._writer, self._schema = pq.ParquetWriter(self.path, schema, **PARQUET_OPTIONS), schema
        self._writer.write_table(pa.Table.from_pandas(df, schema=self._schema, preserve_index=False))
        self.rows += len(df)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


@contextlib.contextmanager
def parquet_batches(path: str | os.PathLike, attrs: dict | None = None) -> Iterator[BatchWriter]:
    """A ``BatchWriter`` onto a temporary file that replaces ``path`` on clean exit (see
    ``atomic_path``); the caller writes at least one frame (an empty file is no parquet)."""
    with atomic_path(path) as tmp:
        writer = BatchWriter(tmp, attrs)
        try:
            yield writer
        finally:
            writer.close()


def write_json(obj: Any, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def write_csv(df: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def file_stamp(path: str | os.PathLike) -> list | str:
    """[name, size, mtime_ns] of a file or of each file directly in a directory; a hub id (not a
    path) as itself. A rebuilt input gets a new stamp, so work resumed from files written
    before it (training progress, caption chunks) is recognised as stale."""
    path = Path(path)
    if not path.exists():
        return str(path)
    files = sorted(f for f in path.iterdir() if f.is_file()) if path.is_dir() else [path]
    return [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]


def cli_description(doc: str | None) -> str:
    """The first paragraph of a module docstring on one line: ``--help``'s description (its first
    line alone may stop mid-sentence)."""
    return " ".join((doc or "").strip().split("\n\n")[0].split())


def setup_logging(log_file: str | os.PathLike | None = None, level: int = logging.INFO) -> None:
    """Send medvqa's logging (and warnings) to ``log_file`` if given, else to stderr.

    The file is appended to, so a re-run of a killed job (which resumes its work) keeps the
    killed attempt's log above a new "started" line."""
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers = [logging.FileHandler(log_file, mode="a")]
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    logging.captureWarnings(True)
    # Python's per-line "already warned" registry is reset whenever library code enters
    # warnings.catch_warnings(), so one deprecation was logged at every training step.
    captured = logging.getLogger("py.warnings")
    if not any(isinstance(f, _OncePerMessage) for f in captured.filters):
        captured.addFilter(_OncePerMessage())
    sys.excepthook = _log_uncaught
    logging.getLogger("medvqa").info("started: pid %d on %s (%s)", os.getpid(), socket.gethostname(),
                                     " ".join(sys.argv[:1]) or "python")


class _OncePerMessage(logging.Filter):
    """Lets each distinct message through once."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in self.seen:
            return False
        self.seen.add(message)
        return True


def _log_uncaught(exc_type, exc, tb) -> None:
    # A failing job's traceback belongs in its log file, not only on the console.
    logging.getLogger("medvqa").critical("stage failed", exc_info=(exc_type, exc, tb))
    sys.__excepthook__(exc_type, exc, tb)


def absolute_if_local(name: str) -> str:
    """A hub id as it is; an existing local path as an absolute path (valid from any working directory)."""
    return str(Path(name).resolve()) if Path(name).exists() else name
