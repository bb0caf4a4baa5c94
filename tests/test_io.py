"""medvqa.io: atomic file and directory writes survive killed writers; job logs append and log a warning once."""

import json
import os
import stat
import subprocess
import sys

import pytest

from medvqa import io
from medvqa.io import write_json

KILLED_WRITE = """
import os, signal, sys
from medvqa.io import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"x" * 100_000)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def killed_writer_leftovers(script: str, target) -> tuple[list, object, object]:
    """Run ``script`` (a writer of ``target`` that kills itself mid-write); return its leftovers
    and the names of a live writer's and another host's temporaries of ``target`` (not created)."""
    killed = subprocess.run([sys.executable, "-c", script, str(target)])
    assert killed.returncode == -9
    left = list(target.parent.glob(f".{target.name}.*.tmp"))
    assert len(left) == 1 and not target.exists()
    live = target.parent / f".{target.name}.{io._host()}-{os.getpid()}.abc_12.tmp"  # a writer still running
    remote = target.parent / f".{target.name}.otherhost-1.abc_12.tmp"  # another host's (shared filesystem)
    return left, live, remote


def test_the_next_write_removes_temporary_files_of_killed_writers_only(tmp_path):
    target = tmp_path / "out.json"
    _, live, remote = killed_writer_leftovers(KILLED_WRITE, target)
    other_output = tmp_path / f".out.json.bak.{io._host()}-999999999.abc_12.tmp"
    for path in (live, remote, other_output):
        path.write_bytes(b"")
    write_json({"a": 1}, target)
    assert json.loads(target.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.glob(".*.tmp")) == sorted(p.name for p in (live, remote, other_output))


LOGGING_JOB = """
import logging, sys, warnings
from medvqa.io import setup_logging
setup_logging(sys.argv[1])
for step in range(5):
    with warnings.catch_warnings():  # library code does this, resetting the per-line registry
        pass
    warnings.warn("`past_key_values` is deprecated", FutureWarning)
logging.getLogger("medvqa").info("attempt %s done", sys.argv[2])
"""


def test_job_logs_append_across_attempts_and_log_a_warning_once(tmp_path):
    log_file = tmp_path / "train.log"
    for attempt in ("1", "2"):
        subprocess.run([sys.executable, "-c", LOGGING_JOB, str(log_file), attempt], check=True)
    text = log_file.read_text()
    assert "attempt 1 done" in text and "attempt 2 done" in text  # the first attempt's log is kept
    assert text.count("started: pid") == 2
    assert text.count("past_key_values") == 2  # once per attempt, not once per step


# --- atomic_dir: save_pretrained folders (tiny checkpoints, hf_model/, adapter/) ---


def _tree(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_directory_writer_that_fails_midway_leaves_no_target_and_no_temporary(tmp_path):
    target = tmp_path / "ckpt"
    with pytest.raises(RuntimeError, match="midway"):
        with io.atomic_dir(target) as tmp:
            (tmp / "config.json").write_text("{}")
            (tmp / "sub").mkdir()
            (tmp / "sub" / "weights.bin").write_bytes(b"x" * 1000)
            raise RuntimeError("midway")
    assert list(tmp_path.iterdir()) == []
    # An existing directory is left exactly as it was.
    target.mkdir()
    (target / "old.json").write_text("old")
    with pytest.raises(RuntimeError):
        with io.atomic_dir(target) as tmp:
            (tmp / "new.json").write_text("new")
            raise RuntimeError("midway")
    assert _tree(target) == {"old.json": b"old"} and list(tmp_path.iterdir()) == [target]


def test_a_directory_write_replaces_an_existing_directory_completely(tmp_path):
    target = tmp_path / "ckpt"
    (target / "nested").mkdir(parents=True)
    (target / "stale.safetensors").write_bytes(b"stale")
    (target / "nested" / "stale.json").write_text("stale")
    (target / "config.json").write_text("old")
    with io.atomic_dir(target) as tmp:
        assert tmp.parent == tmp_path and tmp.is_dir() and not any(tmp.iterdir())
        (tmp / "config.json").write_text("new")
        (tmp / "clip").mkdir()
        io.write_json({"a": 1}, tmp / "clip" / "x.json")  # atomic files inside an atomic folder
        assert _tree(target)["config.json"] == b"old"  # nothing visible before the block ends
    assert _tree(target) == {"config.json": b"new", "clip/x.json": b'{\n  "a": 1\n}\n'}
    assert list(tmp_path.iterdir()) == [target]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o777 & ~umask  # not mkdtemp's 0700


def test_a_directory_write_replaces_a_link_and_leaves_its_target_alone(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.json").write_text("keep")
    target = tmp_path / "ckpt"
    target.symlink_to(elsewhere)
    with io.atomic_dir(target) as tmp:
        (tmp / "config.json").write_text("new")
    assert not target.is_symlink() and _tree(target) == {"config.json": b"new"}
    assert _tree(elsewhere) == {"keep.json": b"keep"}


KILLED_DIR_WRITE = """
import os, signal, sys
from medvqa.io import atomic_dir
with atomic_dir(sys.argv[1]) as tmp:
    (tmp / "sub").mkdir()
    (tmp / "sub" / "model.safetensors").write_bytes(b"x" * 100_000)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_the_next_directory_write_removes_folders_of_killed_writers_only(tmp_path):
    target = tmp_path / "ckpt"
    left, live, remote = killed_writer_leftovers(KILLED_DIR_WRITE, target)
    assert left[0].is_dir()
    for folder in (live, remote):
        (folder / "sub").mkdir(parents=True)
        (folder / "sub" / "weights.bin").write_bytes(b"x")
    with io.atomic_dir(target) as tmp:
        (tmp / "config.json").write_text("{}")
    assert _tree(target) == {"config.json": b"{}"}
    assert sorted(p.name for p in tmp_path.glob(".*.tmp")) == sorted([live.name, remote.name])


# A kill at the worst moment: after the old folder moved aside, before the new one moved in.
KILLED_BETWEEN_RENAMES = """
import os, signal, sys
from medvqa import io
renames = []
def rename_then_die(src, dst):
    renames.append(dst)
    if len(renames) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    real_rename(src, dst)
real_rename, io.os.rename = io.os.rename, rename_then_die
with io.atomic_dir(sys.argv[1]) as tmp:
    (tmp / "config.json").write_text("new")
"""


def test_a_kill_between_the_two_renames_leaves_no_target_and_the_next_write_cleans_up(tmp_path):
    target = tmp_path / "ckpt"
    target.mkdir()
    (target / "config.json").write_text("old")
    killed = subprocess.run([sys.executable, "-c", KILLED_BETWEEN_RENAMES, str(target)])
    assert killed.returncode == -9
    assert not os.path.lexists(target)  # a missing output, never a mix of old and new files
    left = {p.name: _tree(p) for p in tmp_path.glob(".ckpt.*.tmp")}
    assert sorted(left.values(), key=str) == [{"config.json": b"new"}, {"config.json": b"old"}]
    with io.atomic_dir(target) as tmp:
        (tmp / "config.json").write_text("newer")
    assert _tree(target) == {"config.json": b"newer"} and list(tmp_path.iterdir()) == [target]
