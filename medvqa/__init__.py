"""medvqa: the library behind the medical VQA / captioning Snakemake workflow.

Every workflow stage is one small function of this package; the Snakemake rules only
pass paths and a parameter mapping. Nothing here imports or knows about Snakemake.
"""

__version__ = "0.1.0"
