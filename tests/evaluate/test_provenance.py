"""Provenance in every metrics JSON: versions, git commit, split / predictions fingerprints, model."""

import hashlib
import json
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import medvqa
from medvqa import provenance
from medvqa.evaluate.score import score_vqa
from medvqa.evaluate.spec import ScoreSpec

REPO = Path(__file__).resolve().parents[2]
DATA = pd.DataFrame({
    "question_id": ["q2", "q1", "q3"],
    "image_id": ["i1", "i1", "i2"],
    "question": ["Is it normal?", "Where?", "Which organ?"],
    "answer": ["yes", "left lung", "liver"],
    "answer_type": ["closed", "open", "open"],
    "image": [b"x", b"x", b"y"],
})
PREDICTIONS = pd.DataFrame({"question_id": ["q1", "q2", "q3"], "prediction": ["left lung", "no", "liver"],
                            "confidence": [0.9, 0.6, 0.8]})


def _write(tmp_path, data=DATA, predictions=PREDICTIONS):
    data.to_parquet(tmp_path / "d.parquet")
    predictions.to_parquet(tmp_path / "p.parquet")
    return tmp_path / "d.parquet", tmp_path / "p.parquet"


def test_split_fingerprint_by_hand(tmp_path):
    data_path, _ = _write(tmp_path)
    out = provenance.table_fingerprint(data_path, provenance.SPLIT_FIELDS["vqa"])
    rows = [["q1", "i1", "Where?", "left lung", "open"], ["q2", "i1", "Is it normal?", "yes", "closed"],
            ["q3", "i2", "Which organ?", "liver", "open"]]  # sorted, image bytes not hashed
    expected = hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode("utf-8")).hexdigest()
    assert out == {"sha256": expected, "short": expected[:12],
                   "fields": ["question_id", "image_id", "question", "answer", "answer_type"], "rows": 3}


def test_fingerprint_ignores_row_order_and_parquet_metadata_but_not_content(tmp_path):
    data_path, _ = _write(tmp_path)
    fields = provenance.SPLIT_FIELDS["vqa"]
    base = provenance.table_fingerprint(data_path, fields)["sha256"]
    shuffled = tmp_path / "shuffled.parquet"
    table = pa.Table.from_pandas(DATA.iloc[[2, 0, 1]], preserve_index=False).replace_schema_metadata({"x": "y"})
    pq.write_table(table, shuffled, compression="gzip")
    assert provenance.table_fingerprint(shuffled, fields)["sha256"] == base
    changed = tmp_path / "changed.parquet"
    DATA.assign(answer=["yes", "right lung", "liver"]).to_parquet(changed)
    assert provenance.table_fingerprint(changed, fields)["sha256"] != base


def test_library_versions_come_from_metadata_without_importing_torch():
    code = (
        "import sys; from medvqa.provenance import library_versions, provenance; "
        "v = library_versions(); assert 'torch' not in sys.modules and 'transformers' not in sys.modules; "
        "print(v['numpy'], v['torch'])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    numpy_version, torch_version = done.stdout.split()
    assert numpy_version == metadata.version("numpy")
    assert torch_version == metadata.version("torch")
    assert provenance.library_versions(["no-such-distribution-xyz"]) == {"no-such-distribution-xyz": None}


def test_git_commit_in_a_checkout_and_none_outside(tmp_path, monkeypatch):
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs the repository as a git checkout")
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    state = provenance.git_state(REPO)
    assert state["commit"] == head and isinstance(state["dirty"], bool)
    assert provenance.git_state(tmp_path) == {"commit": None, "dirty": None}  # not a repository
    # A directory inside a repository that is not its top level is not "the project's" checkout.
    assert provenance.git_state(REPO / "medvqa") == {"commit": None, "dirty": None}
    monkeypatch.setenv("PATH", str(tmp_path))  # no git executable at all
    assert provenance.git_state(REPO) == {"commit": None, "dirty": None}


def test_model_provenance_hashes_run_files_and_local_checkpoints(tmp_path):
    run_dir = tmp_path / "results/models/vqa/m/0"
    run_dir.mkdir(parents=True)
    (run_dir / "state.json").write_text('{"family": "blip"}')
    (run_dir / "best.safetensors").write_bytes(b"weights")
    checkpoint = tmp_path / "pretrained/tiny"
    checkpoint.mkdir(parents=True)
    (checkpoint / "model.safetensors").write_bytes(b"pretrained")
    (checkpoint / "config.json").write_text("{}")
    entry = {"family": "blip", "model": {"checkpoint": str(checkpoint), "prompt": "Q: {question}"},
             "generate": {"max_new_tokens": 8}}
    out = provenance.model_provenance({"model": "m", "seed": 0, "run_dir": str(run_dir), "entry": entry})
    assert out["state_sha256"] == hashlib.sha256(b'{"family": "blip"}').hexdigest()
    assert out["weights_sha256"] == hashlib.sha256(b"weights").hexdigest()
    assert out["checkpoints"]["checkpoint"]["weights_sha256"] == {
        "model.safetensors": hashlib.sha256(b"pretrained").hexdigest()
    }
    assert (out["seed"], out["prompt"], out["decoding"]) == (0, "Q: {question}", {"max_new_tokens": 8})
    (run_dir / "best.safetensors").unlink()
    hub = {"family": "vlm_sft", "model": {"checkpoint": "Qwen/Qwen2-VL-2B-Instruct"}}
    out = provenance.model_provenance({"run_dir": str(run_dir), "entry": hub})
    assert out["weights_sha256"].startswith("none (zero-shot")
    assert out["checkpoints"]["checkpoint"] == {
        "id": "Qwen/Qwen2-VL-2B-Instruct", "kind": "hub id", "revision": "not pinned (the hub's default branch)",
        "cached_commit": None,
    }
    missing = provenance.checkpoint_identity("results/pretrained/gone", None)
    assert missing["kind"].startswith("local path, absent")


def test_hub_checkpoint_records_the_commit_of_the_local_cache(tmp_path, monkeypatch):
    # huggingface_hub's cache layout: models--{org}--{name}/refs/{revision} holds the commit hash.
    refs = tmp_path / "hub/models--org--model/refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text("a" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert provenance.checkpoint_identity("org/model", None)["cached_commit"] == "a" * 40
    assert provenance.checkpoint_identity("org/model", "v2")["cached_commit"] is None


def test_metrics_json_records_provenance_and_is_deterministic(tmp_path):
    data_path, pred_path = _write(tmp_path)
    first = score_vqa(data_path, pred_path, tmp_path / "a.json", ScoreSpec())
    second = score_vqa(data_path, pred_path, tmp_path / "b.json", ScoreSpec())
    assert first == second  # no timestamps or hosts: two runs of the same scoring compare equal
    origin = first["provenance"]
    assert origin["project"]["version"] == medvqa.__version__
    assert set(provenance.LIBRARIES) <= set(origin["libraries"])
    assert origin["split"] == provenance.table_fingerprint(data_path, provenance.SPLIT_FIELDS["vqa"])
    assert origin["model"] is None  # no run given (the workflow passes the model's entry)
    other = PREDICTIONS.assign(prediction=["left lung", "yes", "liver"])
    _, pred_path = _write(tmp_path, predictions=other)
    third = score_vqa(data_path, pred_path, tmp_path / "c.json", ScoreSpec())
    assert third["provenance"]["predictions"]["sha256"] != origin["predictions"]["sha256"]
    assert third["provenance"]["split"] == origin["split"]
