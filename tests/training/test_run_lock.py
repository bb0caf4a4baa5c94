"""One writer per run directory: a second trainer fails at once naming the first one's pid."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from training.vqa_fixture import cnn_lstm_config, train_paths

from medvqa.models.checkpoint import LOCK, RunLockedError
from medvqa.training.train import run_training

HOLDER = """
import sys, time
from medvqa.models.checkpoint import run_lock
with run_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_a_second_trainer_of_a_run_fails_at_once_naming_the_holder(fixture_root, tmp_path):
    run_dir = tmp_path / "run"
    # The first writer: e.g. an orphaned training job of a killed Snakemake parent.
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        start = time.monotonic()
        with pytest.raises(RunLockedError, match=rf"{run_dir} is being trained by another process \(pid {holder.pid} on "):
            run_training(cnn_lstm_config(epochs=1), train_paths(fixture_root, "words"), run_dir, seed=0)
        assert time.monotonic() - start < 10
        # Nothing of the run was touched: only the lock, in the private resume/ state.
        assert sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*")) == ["resume", f"resume/{LOCK}"]
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # kill -9 leaves the lock file, but the kernel released the lock: a re-run proceeds.
    state = run_training(cnn_lstm_config(epochs=1), train_paths(fixture_root, "words"), run_dir, seed=0)
    assert state["epoch"] == 1 and (run_dir / "state.json").exists()
