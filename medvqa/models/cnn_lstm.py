"""Family ``cnn_lstm``: ResNet image encoder, BiLSTM question encoder, question-guided
attention over the spatial feature map, and a BatchNorm + dropout classifier over the answers.

Questions are ids of the ``words`` tokenizer. ImageNet weights come from torchvision's weights
API when ``pretrained: true`` (real runs, ResNet50 at 224 px); the demo trains a random
ResNet18 cut after ``stages: 2`` (8×8 attention map at 64 px; a third stage costs ~30 % more CPU
and gave the same test accuracy, bench/RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from medvqa.models import classify
from medvqa.models.common import DataInfo, ModelFamily, Normalise, VQAOutput, classifier_head
from medvqa.models.specs import CnnLstmSpec
from medvqa.spec import ConfigError

# torchvision's own normalisation for its ImageNet weights.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def builder_args(model_config: Mapping[str, Any], info: DataInfo) -> dict[str, Any]:
    spec = CnnLstmSpec.from_mapping(model_config, "cnn_lstm model")
    if info.vocab_size is None:
        raise ConfigError("cnn_lstm needs a tokenizer of kind 'words' (a word vocabulary)")
    data = {"vocab_size": info.vocab_size, "pad_id": info.pad_id, "n_answers": info.n_answers}
    return {**spec.to_dict(), **data}


def resnet_trunk(backbone: str, stages: int, load_weights: bool) -> tuple[nn.Sequential, int]:
    """ResNet up to ``layer{stages}``, and its channels C.

    (B, 3, H, W) → (B, C, H / 2^(stages+1), W / 2^(stages+1)); stride 32 with all 4 stages.
    """
    # Imported here: config checks build CnnLstmSpec and should not pay for torchvision.
    from torchvision import models as tv

    make, weights = {
        "resnet18": (tv.resnet18, tv.ResNet18_Weights.IMAGENET1K_V1),
        "resnet34": (tv.resnet34, tv.ResNet34_Weights.IMAGENET1K_V1),
        "resnet50": (tv.resnet50, tv.ResNet50_Weights.IMAGENET1K_V2),
    }[backbone]
    net = make(weights=weights if load_weights else None)
    layers = [getattr(net, f"layer{i}") for i in range(1, stages + 1)]
    last = layers[-1][-1]
    channels = (last.bn3 if hasattr(last, "bn3") else last.bn2).num_features
    return nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, *layers), channels


class QuestionEncoder(nn.Module):
    """input_ids (B, L), attention_mask (B, L) → (B, 2 * hidden_dim): last states of a BiLSTM."""

    def __init__(self, vocab_size: int, embed_dim: int, hidden_dim: int, pad_id: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.lstm = nn.LSTM(embed_dim, hidden_dim, batch_first=True, bidirectional=True)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        lengths = attention_mask.sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(
            self.embed(input_ids), lengths, batch_first=True, enforce_sorted=False
        )
        _, (hidden, _) = self.lstm(packed)
        return torch.cat([hidden[0], hidden[1]], dim=-1)


class QuestionGuidedAttention(nn.Module):
    """features (B, C, h, w) and question (B, Q) → (attended (B, A), question (B, A), weights (B, h, w))."""

    def __init__(self, image_dim: int, question_dim: int, attention_dim: int):
        super().__init__()
        self.image = nn.Conv2d(image_dim, attention_dim, kernel_size=1)
        self.question = nn.Linear(question_dim, attention_dim)
        self.score = nn.Linear(attention_dim, 1)

    def forward(self, features: torch.Tensor, question: torch.Tensor):
        b, _, h, w = features.shape
        regions = self.image(features).flatten(2).transpose(1, 2)  # (B, h*w, A)
        query = self.question(question)  # (B, A)
        scores = self.score(torch.tanh(regions + query[:, None, :])).squeeze(-1)  # (B, h*w)
        weights = scores.softmax(dim=-1)
        attended = torch.bmm(weights[:, None, :], regions).squeeze(1)
        return attended, query, weights.view(b, h, w)


class CnnLstm(nn.Module):
    def __init__(self, args: Mapping[str, Any], load_pretrained: bool):
        super().__init__()
        self.normalise = Normalise(IMAGENET_MEAN, IMAGENET_STD)
        self.image_encoder, channels = resnet_trunk(
            args["backbone"], args["stages"], load_pretrained and args["pretrained"]
        )
        self.question_encoder = QuestionEncoder(
            args["vocab_size"], args["embed_dim"], args["hidden_dim"], args["pad_id"]
        )
        self.attention = QuestionGuidedAttention(channels, 2 * args["hidden_dim"], args["attention_dim"])
        self.classifier = classifier_head(
            2 * args["attention_dim"], args["classifier_dim"], args["n_answers"], args["dropout"], "batch"
        )

    def forward(self, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        features = self.image_encoder(self.normalise(images))
        question = self.question_encoder(input_ids, attention_mask)
        attended, query, weights = self.attention(features, question)
        return VQAOutput(self.classifier(torch.cat([attended, query], dim=-1)), weights)


def build(args: Mapping[str, Any], load_pretrained: bool) -> CnnLstm:
    return CnnLstm(args, load_pretrained)


def param_groups(model: CnnLstm) -> dict[str, list[nn.Parameter]]:
    """The ResNet trunk is the (possibly pretrained) backbone; everything else is new."""
    backbone = list(model.image_encoder.parameters())
    ids = {id(p) for p in backbone}
    return {"backbone": backbone, "head": [p for p in model.parameters() if id(p) not in ids]}


FAMILY = ModelFamily(
    CnnLstmSpec, builder_args, build, param_groups,
    classify.dataset, classify.collate, classify.score, classify.predict,
)
