"""GRPO training of ``vlm_sft`` LoRA / QLoRA entries (``train.method: grpo``), with TRL's ``GRPOTrainer``.

Reads the train split (parquet without image bytes: question_id, image_id, question, answer,
answer_type; the memory-mapped image cache) and writes the run directory of every family
(``medvqa.models.checkpoint``), with per-step rows in history.csv:

  best.safetensors   the LoRA weights after the last step (GRPO has no validation metric to select on)
  adapter/           the same adapter in PEFT's format (``vlm_sft.export_adapter``)
  state.json         family, builder args, spec, monitor "reward", steps, the last step's mean reward
  history.csv        step, epoch, reward, reward_std, reward_<name>, reward_<name>_std (each reward
                     of ``train.grpo.rewards``), kl, completion_length, loss, lr, seconds
  resume/            TRL checkpoints (checkpoint-<step>/: adapter, optimizer, scheduler, RNG state)
                     every ``train.grpo.save_steps`` steps, and last.json naming the last complete
                     one; a killed job's re-run continues from it (same settings and inputs only)

Each step takes ``train.batch_size`` questions, samples ``grpo.group_size`` completions of each
at ``grpo.temperature`` (up to ``grpo.max_completion_length`` tokens), scores them with the
weighted rewards of ``medvqa.training.rewards``, normalises the rewards within each question's
group into advantages and minimises TRL's clipped policy-gradient loss (``loss_type="grpo"``)
plus ``grpo.beta`` × the KL divergence to the reference model. The reference is the LoRA
model with its adapter disabled (TRL's behaviour for PEFT models): the base weights, also
when the run starts from an SFT adapter (``train.init_from``), so no second copy is loaded.

TRL's trainer is configured, not subclassed (HOUSE_STYLE 5): the model, processor, prompts and
rewards are this project's; TRL samples, scores, computes the loss and checkpoints.
"""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from medvqa.data.images import load_image_cache
from medvqa.data.schema import read_text_columns
from medvqa.io import read_json, write_csv, write_json
from medvqa.models.registry import BuiltModel, family_of
from medvqa.models.common import resolve_device
from medvqa.models.vlm_collate import PromptFormat, as_pil, chat_messages
from medvqa.models import checkpoint
from medvqa.models.batch import SplitPaths
from medvqa.training.rewards import REWARDS
from medvqa.training.spec import GrpoSpec, TrainSpec

log = logging.getLogger(__name__)

BASE_COLUMNS = ("step", "epoch", "reward", "reward_std")
TAIL_COLUMNS = ("kl", "completion_length", "loss", "lr", "seconds")
# TRL's log keys → history.csv columns (per-reward keys are added by history_columns).
TRL_KEYS = {"step": "step", "epoch": "epoch", "reward": "reward", "reward_std": "reward_std", "kl": "kl",
            "completions/mean_length": "completion_length", "loss": "loss", "learning_rate": "lr",
            "step_time": "seconds"}
RESUME_FREE_KEYS = ("epochs", "patience", "device", "workers", "gpus")


def grpo_questions(paths: SplitPaths, fmt: PromptFormat):
    """The split's questions as TRL reads them: a ``datasets.Dataset`` (in memory, no cache files) whose
    items are {"prompt": chat messages (system?, user: image + question + instruction), "image": PIL
    image from the memory-mapped cache, "answer": str, "answer_type": "closed" | "open"}; images are
    read per item, not copied."""
    from datasets import Dataset

    rows = read_text_columns(paths.parquet)
    if "question" not in rows or "answer_type" not in rows:
        raise ValueError(f"{paths.parquet}: GRPO trains on VQA rows with question, answer and answer_type")
    images, row_of = load_image_cache(paths.images, paths.image_ids, paths.image_size)
    unknown = sorted(set(rows["image_id"].astype(str)) - set(row_of))
    if unknown:
        raise ValueError(f"{paths.images} lacks image_id {unknown[0]!r} ({len(unknown)} missing)")
    table = Dataset.from_dict({
        "question": rows["question"].astype(str).tolist(), "answer": rows["answer"].astype(str).tolist(),
        "answer_type": rows["answer_type"].astype(str).tolist(),
        "image_row": rows["image_id"].astype(str).map(row_of).tolist(),
    })

    def items(batch: Mapping[str, list]) -> dict[str, list]:
        return {"prompt": [chat_messages(q, fmt) for q in batch["question"]],
                "image": [as_pil(images[i]) for i in batch["image_row"]],
                "answer": batch["answer"], "answer_type": batch["answer_type"]}

    return table.with_transform(items)


def completion_text(completion) -> str:
    """The generated answer: TRL gives conversational completions as [{"role", "content"}]."""
    if isinstance(completion, str):
        return completion
    content = completion[-1]["content"]
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


def reward_function(name: str, spec: GrpoSpec, stop_ids: Sequence[int]) -> Callable[..., list[float | None]]:
    """TRL's batched reward callable for ``REWARDS[name]``; TRL logs it under ``name``."""
    reward, stops = REWARDS[name], set(stop_ids)

    def batch_reward(prompts, completions, completion_ids, answer, answer_type, **_) -> list[float | None]:
        return [reward(completion_text(c), a, k, bool(stops & set(ids)), spec)
                for c, ids, a, k in zip(completions, completion_ids, answer, answer_type, strict=True)]

    batch_reward.__name__ = name
    return batch_reward


def history_columns(spec: GrpoSpec) -> tuple[str, ...]:
    per_reward = [f"reward_{name}{stat}" for name in spec.rewards for stat in ("", "_std")]
    return (*BASE_COLUMNS, *per_reward, *TAIL_COLUMNS)


def history_frame(log_history: Sequence[Mapping[str, Any]], spec: GrpoSpec) -> pd.DataFrame:
    """One row per optimizer step from TRL's log history (logging_steps=1; the summary row is skipped)."""
    rows = []
    for entry in log_history:
        if "reward" not in entry:
            continue
        row = {column: entry.get(key) for key, column in TRL_KEYS.items()}
        for name in spec.rewards:
            row[f"reward_{name}"] = entry.get(f"rewards/{name}/mean")
            row[f"reward_{name}_std"] = entry.get(f"rewards/{name}/std")
        rows.append(row)
    return pd.DataFrame(rows, columns=list(history_columns(spec)))


def total_steps(spec: TrainSpec, n_questions: int) -> int:
    return spec.grpo.max_steps or spec.epochs * math.ceil(n_questions / spec.batch_size)


def grpo_config(spec: TrainSpec, resume_dir: Path, n_questions: int):
    """TRL's GRPOConfig from the run's settings (one process; bf16 on CUDA unless fp32 is asked)."""
    from trl import GRPOConfig

    from medvqa.training.engine import resolve_precision

    device = resolve_device(spec.device)
    precision = resolve_precision(spec.precision, device)
    grpo = spec.grpo
    return GRPOConfig(
        output_dir=str(resume_dir), max_steps=total_steps(spec, n_questions), seed=spec.seed, data_seed=spec.seed,
        per_device_train_batch_size=spec.batch_size * grpo.group_size, num_generations=grpo.group_size,
        gradient_accumulation_steps=spec.grad_accum, learning_rate=spec.lr, weight_decay=spec.weight_decay,
        warmup_steps=spec.warmup, lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr_rate": spec.min_lr}, max_grad_norm=spec.grad_clip or 1e9,
        beta=grpo.beta, temperature=grpo.temperature, max_completion_length=grpo.max_completion_length,
        loss_type="grpo", reward_weights=[float(w) for w in grpo.rewards.values()],
        # The builder already set up gradient checkpointing (model.gradient_checkpointing).
        gradient_checkpointing=False, use_cpu=device.type == "cpu", bf16=precision == "bf16",
        fp16=precision == "fp16", dataloader_num_workers=spec.workers, logging_steps=1, report_to=[],
        save_strategy="steps", save_steps=grpo.save_steps, save_total_limit=2, disable_tqdm=True,
        # TRL must see the answer columns (reward inputs) and the image column.
        remove_unused_columns=False,
    )


def fresh_grpo_state(
    spec: TrainSpec, model: BuiltModel, inputs: Mapping[str, Any], answers: Sequence[str]
) -> dict[str, Any]:
    """state.json before the first step (what a resumed run must match)."""
    return {"family": model.family, "args": model.args, "answers": list(answers), "spec": spec.to_dict(),
            "inputs": dict(inputs), "monitor": "reward", "method": "grpo", "step": 0, "final_reward": None}


def resume_checkpoint(resume_dir: Path, state: Mapping[str, Any]) -> str | None:
    """The TRL checkpoint a re-run continues from: the one resume/last.json names, when it belongs to
    the same settings and inputs; otherwise None, and stale checkpoints are removed."""
    if checkpoint.can_resume(resume_dir, state, RESUME_FREE_KEYS):
        step = read_json(resume_dir / "last.json")["step"]
        if (resume_dir / f"checkpoint-{step}").is_dir():
            log.info("resuming %s after step %d", resume_dir, step)
            return str(resume_dir / f"checkpoint-{step}")
    for stale in resume_dir.glob("checkpoint-*"):
        shutil.rmtree(stale)
    return None


def progress_callback(resume_dir: Path, state: Mapping[str, Any], spec: GrpoSpec):
    """A TrainerCallback that logs each step's reward, KL and length through ``logging`` (the run's
    log file, not stdout), and, after TRL wrote checkpoint-<step>, records it in resume/last.json
    (written last, so last.json names a complete checkpoint) with the history so far."""
    from transformers import TrainerCallback

    class RecordProgress(TrainerCallback):
        def on_log(self, args, trainer_state, control, logs=None, **kwargs):
            if logs and "reward" in logs:
                log.info("step %d/%d: reward %.4g (std %.3g), kl %.4g, completion length %.3g, %.3gs",
                         trainer_state.global_step, trainer_state.max_steps, logs["reward"], logs["reward_std"],
                         logs.get("kl", float("nan")), logs["completions/mean_length"], logs["step_time"])

        def on_save(self, args, trainer_state, control, **kwargs):
            write_csv(history_frame(trainer_state.log_history, spec), resume_dir / checkpoint.HISTORY)
            write_json({**state, "step": trainer_state.global_step}, resume_dir / "last.json")

    return RecordProgress()


def train_grpo(spec: TrainSpec, model: BuiltModel, paths: SplitPaths, out_dir: str | Path,
               inputs: Mapping[str, Any] | None = None, answers: Sequence[str] = ()) -> dict[str, Any]:
    """GRPO-train the LoRA model ``model`` (a ``vlm_sft`` entry, already holding any ``init_from``
    adapter) on the questions of ``paths``; writes the run directory and returns state.json.

    ``inputs`` (file stamps) and ``answers`` (answers.json) go into the state as the engine's do."""
    from transformers import PrinterCallback
    from trl import GRPOTrainer

    from medvqa.models.vlm_sft import generation_stop_ids, load_processor, prompt_format, spec_of

    out_dir = Path(out_dir)
    resume_dir = out_dir / checkpoint.RESUME
    model_spec = spec_of(model.args)
    processor = load_processor(model_spec)
    # TRL re-encodes the prompts for the scoring pass with the tokenizer's own padding side, and
    # generation pads them on the left: a right-padding tokenizer (the Qwen ones) misplaces
    # mm_token_type_ids, which Qwen3-VL's M-RoPE positions read.
    processor.tokenizer.padding_side = "left"
    fmt = prompt_format(model_spec, processor, model.args["model_type"])
    questions = grpo_questions(paths, fmt)
    stops = generation_stop_ids(model.module, processor, fmt)
    state = fresh_grpo_state(spec, model, inputs or {}, answers)
    resume_from = resume_checkpoint(resume_dir, state)
    config = grpo_config(spec, resume_dir, len(questions))
    # Sampling stops at the end-of-turn token (and the model's eos ids), like prediction does.
    config.generation_kwargs = {"eos_token_id": stops}
    trainer = GRPOTrainer(
        model=model.module, processing_class=processor, args=config, train_dataset=questions,
        reward_funcs=[reward_function(name, spec.grpo, stops) for name in spec.grpo.rewards],
        callbacks=[progress_callback(resume_dir, state, spec.grpo)],
    )
    trainer.remove_callback(PrinterCallback)  # it prints every step's dict to stdout; the log has them
    log.info("GRPO: %d questions, %d steps of %d questions x %d completions, beta %g, rewards %s",
             len(questions), config.max_steps, spec.batch_size, spec.grpo.group_size, spec.grpo.beta,
             spec.grpo.rewards)
    trainer.train(resume_from_checkpoint=resume_from)
    history = history_frame(trainer.state.log_history, spec.grpo)
    final = {**state, "step": trainer.state.global_step,
             "final_reward": None if history.empty else float(history["reward"].iloc[-1])}
    publish(model, out_dir, final, history)
    return checkpoint.published(final)


def publish(model: BuiltModel, out_dir: Path, state: Mapping[str, Any], history: pd.DataFrame) -> None:
    """The run's outputs: trained adapter weights, history.csv, state.json, and the family's export."""
    family = family_of(model.family)
    checkpoint.save_weights(model.module, out_dir / checkpoint.WEIGHTS, trainable_only=family.saves == "trainable")
    write_csv(history, out_dir / checkpoint.HISTORY)
    write_json(checkpoint.published(state), out_dir / checkpoint.STATE)
    if family.export is not None:
        family.export(model.module, model.args, out_dir)
