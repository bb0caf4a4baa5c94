# medvqa: medical VQA and captioning, from download to paper figures.
#
# results/ path grammar (logs/ and benchmarks/ mirror it). The rules' output patterns spell it out;
# medvqa/paths.py builds the input functions' paths and the targets (derived views included), for the rules
# and for python -m medvqa.train / medvqa.predict; medvqa/targets.py lists the targets below:
#   results/data/{dataset}/source/{split}.parquet     validated source rows (before filters)
#   results/data/{dataset}/{split}.parquet            unified rows after filters
#   results/data/{dataset}/rejected.csv               bad rows dropped with on_bad_sample: skip
#   results/data/{dataset}/answers.json               answer vocabulary + closed/open map
#   results/data/{dataset}/images_{size}.{split}.npy  uint8 image cache (+ .ids.json), memory-mapped (image_cache: raw)
#   results/data/{dataset}/images_{size}.{split}.png.arrow  PNG image cache (image_cache: png; none: no cache)
#   results/data/{dataset}/tokens/{tokenizer}.{split}.parquet   pre-tokenised text
#   results/data/{dataset}/summary.json               sizes, answer distribution, baselines, leakage
#   results/data/{dataset}/leakage.json               duplicate-image audit (+ leakage_pairs.csv)
#   results/{predictions,captions}/{dataset}/baseline-*/0/{split}.parquet   baselines, scored like models
#   results/models/{dataset}/{model}/{seed}/          checkpoint dir + history.csv
#   results/predictions/{dataset}/{model}/{seed}/{split}.parquet
#   results/captions/{dataset}/{model}/{seed}/{split}.parquet
#   results/metrics/{dataset}/{model}/{seed}/{split}.json
#   results/figures/..., results/tables/...
#
#   results/pretrained/{name}/                        tiny offline stand-ins of hub checkpoints
#
# Targets: all (default), data, captions, evaluate, figures (figures and tables from results/ alone).

from snakemake.utils import min_version

from medvqa.config_files import check_config_files, check_structure, expand_experiments
from medvqa.workflow_config import check_config

min_version("9.0")

# Snakemake's YAML loading keeps the last of repeated keys and names no line for a syntax error:
# read every config file strictly first (medvqa.config_files.load_config_file).
check_config_files(workflow.config_settings.configfiles or ["config.yaml"])


# config.yaml is the default. Config files named on the command line replace it instead of
# being merged into it (configs/paper.yaml must not inherit the demo's datasets); list several
# to layer them: --configfile config.yaml configs/grid.yaml
if not workflow.config_settings.configfiles:

    configfile: "config.yaml"


# Structure and types of the sections (one line naming the key on error); then grid experiments become
# plain ones over derived dataset views, and every entry's specs and cross-key rules are checked.
check_structure(config, workflow.source_path("rules/config.schema.yaml"))
expand_experiments(config)
check_config(config)


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/baselines.smk"
include: "rules/pretrained.smk"
include: "rules/train.smk"
include: "rules/infer.smk"
include: "rules/caption.smk"
include: "rules/evaluate.smk"
include: "rules/figures.smk"
include: "rules/leakage.smk"


rule all:
    input:
        targets.data_targets(config),
        targets.evaluate_targets(config),
        targets.figure_targets(config),
        targets.leakage_targets(config),


rule data:
    input:
        targets.data_targets(config),


rule captions:
    input:
        targets.caption_targets(config),


rule evaluate:
    input:
        targets.evaluate_targets(config),


rule figures:
    input:
        targets.figure_targets(config),
        targets.leakage_targets(config),
