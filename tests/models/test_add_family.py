"""README "Extending": a new model family is its module, its spec, one FAMILIES entry and one
MODEL_FAMILIES line. This test adds a toy family through exactly those places, in a copy of
the repository, and runs the real workflow on it: data stages, training, prediction, scoring.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

TOY_MODULE = '''"""Family ``toy_bow``: mean image colour + bag of question words → answer logits (a test family)."""

from __future__ import annotations

import torch
from torch import nn

from medvqa.models import classify
from medvqa.models.common import ModelFamily, VQAOutput
from medvqa.models.specs import ToyBowSpec


def builder_args(model_config, info):
    spec = ToyBowSpec.from_mapping(model_config, "toy_bow model")
    return {**spec.to_dict(), "n_answers": info.n_answers, "vocab_size": info.vocab_size}


class ToyBow(nn.Module):
    def __init__(self, args):
        super().__init__()
        self.words = nn.EmbeddingBag(args["vocab_size"], args["hidden_dim"], mode="mean")
        self.head = nn.Linear(args["hidden_dim"] + 3, args["n_answers"])

    def forward(self, images, input_ids, attention_mask):
        colour = images.mean(dim=(2, 3))
        words = self.words(input_ids, per_sample_weights=None) if input_ids.numel() else 0
        return VQAOutput(self.head(torch.cat([colour, words], dim=-1)), None)


def build(args, load_pretrained):
    return ToyBow(args)


def param_groups(model):
    return {"backbone": [], "head": list(model.parameters())}


FAMILY = ModelFamily(
    ToyBowSpec, builder_args, build, param_groups, classify.dataset, classify.collate, classify.score, classify.predict,
)
'''

TOY_SPEC = '''

@dataclasses.dataclass(frozen=True)
class ToyBowSpec(ModelSpec):
    """The ``model:`` sub-mapping of a toy_bow config (a test family)."""

    TOKEN_KIND: ClassVar[str | None] = "words"

    hidden_dim: int = 16  # word embedding width
'''


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path}: {old!r} not found"
    path.write_text(text.replace(old, new, 1))


def add_toy_family(root: Path) -> None:
    """The README's places, and nothing else."""
    (root / "medvqa/models/toy_bow.py").write_text(TOY_MODULE)
    with open(root / "medvqa/models/specs.py", "a") as specs:
        specs.write(TOY_SPEC)
    families = root / "medvqa/families.py"
    edit(families, "    VlmSftSpec,\n", "    ToyBowSpec,\n    VlmSftSpec,\n")
    edit(families, "\n}\n", '\n    "toy_bow": FamilyFacts(ToyBowSpec, generative=False),\n}\n')
    registry = root / "medvqa/models/registry.py"
    edit(registry, "from medvqa.models import blip,", "from medvqa.models import toy_bow, blip,")
    edit(registry, '    "vlm_sft": vlm_sft.FAMILY,\n', '    "vlm_sft": vlm_sft.FAMILY,\n    "toy_bow": toy_bow.FAMILY,\n')


def toy_config() -> dict:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    demo = config["datasets"]["demo"]
    demo["options"]["n_images"] = 60
    demo["tokenizers"] = ["words"]
    config["datasets"] = {"demo": demo}
    config["pretrained"] = {}
    config["tokenizers"] = {"words": config["tokenizers"]["words"]}
    config["models"] = {"toy_demo": {"family": "toy_bow", "tokenizer": "words", "train": {"epochs": 2}}}
    config["experiments"] = [{"datasets": ["demo"], "models": ["toy_demo"], "seeds": [0]}]
    config["report"].pop("published", None)
    return config


@pytest.mark.workflow
def test_a_new_family_needs_its_module_spec_table_entry_and_registry_line(tmp_path):
    copy = tmp_path / "repo"
    for name in ("medvqa", "rules", "workflow_scripts", "report", "envs"):
        shutil.copytree(REPO / name, copy / name, symlinks=True)
    shutil.copy(REPO / "Snakefile", copy / "Snakefile")
    add_toy_family(copy)
    (copy / "toy.yaml").write_text(yaml.safe_dump(toy_config()))
    env = {**os.environ, "PYTHONPATH": str(copy), "OMP_NUM_THREADS": "1"}
    target = "results/metrics/demo/toy_demo/0/test.json"
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "--configfile", "toy.yaml", "--cores", "2", target],
        cwd=copy, env=env, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((copy / target).read_text())
    assert metrics["n"]["total"] > 0
    history = (copy / "results/models/demo/toy_demo/0/history.csv").read_text().splitlines()
    assert len(history) == 3  # header + 2 epochs
