"""medvqa: the library behind the medical VQA / captioning Snakemake workflow.

Every workflow stage is one small function of this package; the Snakemake rules only
pass paths and a parameter mapping. Nothing here imports or knows about Snakemake.
"""

__version__ = "0.1.0"


def load_trained(run_dir, device="cpu"):
    """The trained model of a run directory (``results/models/{dataset}/{model}/{seed}/``), any family,
    rebuilt from that directory alone and usable from any working directory.

    Returns ``(model, state)``: ``model.module`` is the torch module in eval mode on ``device``,
    ``model.family`` / ``model.args`` its family and builder arguments; ``state`` is state.json
    (``answers``: a classifier's answer classes, in logit order). Families with a Hugging Face
    format also export it (``hf_model/`` for BLIP, ``adapter/`` for vlm_sft; see the README).
    """
    # Imported on call: ``import medvqa`` stays free of torch.
    from medvqa.training.checkpoint import load_checkpoint

    model, state = load_checkpoint(run_dir)
    model.module.to(device).eval()
    return model, state
