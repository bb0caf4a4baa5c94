"""GRPO rewards: hand-computed values, closed/open applicability, the protocol registry is used."""

from __future__ import annotations

import pytest

from medvqa.spec import ConfigError
from medvqa.training.rewards import REWARDS, answer_format, correctness, token_f1
from medvqa.training.spec import REWARD_NAMES, GrpoSpec, TrainSpec

SPEC = GrpoSpec()


def test_every_configurable_reward_has_a_function():
    assert tuple(REWARDS) == REWARD_NAMES


def test_correctness_scores_closed_questions_under_the_chosen_protocol():
    assert correctness("Yes", "yes", "closed", True, SPEC) == 1.0  # exact_match normalises case
    assert correctness("yes, there is", "yes", "closed", True, SPEC) == 0.0
    # LLaVA-Med's closed rule: contains yes/no and the reference, as raw substrings.
    llava = GrpoSpec(protocol="llava_med")
    assert correctness("yes, there is", "yes", "closed", True, llava) == 1.0
    assert correctness("yes", "lung", "open", True, SPEC) is None


def test_token_f1_scores_open_questions_only():
    assert token_f1("left lung", "left lung", "open", True, SPEC) == 1.0
    # overlap 1: precision 1/3, recall 1/2 → F1 = 2·(1/3·1/2)/(1/3+1/2) = 0.4
    assert token_f1("left upper side", "left lung", "open", True, SPEC) == pytest.approx(0.4)
    assert token_f1("yes", "yes", "closed", True, SPEC) is None


def test_format_rewards_ending_the_turn_and_a_short_answer():
    short = GrpoSpec(max_answer_words=2)
    assert answer_format("left lung", "", "open", True, short) == 1.0
    assert answer_format("left lung", "", "open", False, short) == 0.5
    assert answer_format("in the left lung", "", "open", True, short) == pytest.approx(0.5 + 0.5 * 2 / 4)
    assert answer_format("", "", "open", True, short) == 0.5


@pytest.mark.parametrize(("grpo", "match"), [
    ({"group_size": 1}, "grpo: group_size"), ({"beta": -1}, "grpo: beta"), ({"temperature": 0}, "temperature"),
    ({"max_completion_length": 0}, "max_completion_length"), ({"rewards": {"bleu": 1}}, "unknown reward 'bleu'"),
    ({"rewards": {"format": 0}}, "positive weight"), ({"protocol": "vqa"}, "protocol"),
    ({"kl": 0.1}, "unknown key"),
])
def test_grpo_settings_are_checked_with_one_line_errors(grpo, match):
    with pytest.raises(ConfigError, match=match) as error:
        TrainSpec.from_mapping({"method": "grpo", "grpo": grpo}, "models.m.train")
    assert "\n" not in str(error.value) and str(error.value).startswith("models.m.train")


def test_grpo_settings_need_method_grpo():
    with pytest.raises(ConfigError, match="need method: grpo"):
        TrainSpec.from_mapping({"grpo": {"beta": 0.1}}, "train")
    with pytest.raises(ConfigError, match="method"):
        TrainSpec.from_mapping({"method": "ppo"}, "train")
