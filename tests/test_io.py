"""medvqa.io: atomic writes survive killed writers; job logs append and log a warning once."""

import json
import os
import subprocess
import sys

from medvqa import io
from medvqa.io import write_json

KILLED_WRITE = """
import os, signal, sys
from medvqa.io import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"x" * 100_000)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_the_next_write_removes_temporary_files_of_killed_writers_only(tmp_path):
    target = tmp_path / "out.json"
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITE, str(target)])
    assert killed.returncode == -9
    left = list(tmp_path.glob(".out.json.*.tmp"))
    assert len(left) == 1 and not target.exists()
    live = tmp_path / f".out.json.{io._host()}-{os.getpid()}.abc_12.tmp"  # a writer still running
    remote = tmp_path / ".out.json.otherhost-1.abc_12.tmp"  # another host's writer (shared filesystem)
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
