# Caption generation with a zero-shot checkpoint or a fine-tuned run (BLIP, any HF VLM):
#   results/captions/{dataset}/{model}/{seed}/{split}.parquet
#       image_id, caption (first reference), generated, model, seconds_per_image, chunk
#   (+ {split}.parquet.parts/, deliberately not an output: the finished chunks of a killed job,
#    which the re-run skips; removed once every image has its caption)
#   results/captions/{dataset}/{model}/{seed}/shards/{split}.{shard}.parquet
#       the shards of a model with shards: N > 1 (medvqa.inference.shards), merged into {split}.parquet


rule caption:
    """Captions of one split by a captioning model (zero-shot or fine-tuned), in resumable chunks."""
    input:
        unpack(caption_inputs),
    output:
        captions="results/captions/{dataset}/{model}/{seed}/{split}.parquet",
    log:
        "logs/captions/{dataset}/{model}/{seed}/{split}.log",
    benchmark:
        "benchmarks/captions/{dataset}/{model}/{seed}/{split}.tsv"
    wildcard_constraints:
        dataset=task_datasets("caption"),
        model=caption_models(sharded=False),
        seed=SEED_PATTERN,
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=480,
    params:
        spec=caption_params,
        image_size=image_size_param,
        seed="{seed}",
        model_name="{model}",
    script:
        "../workflow_scripts/caption.py"


# A model with shards: N captions each split as N jobs (stable id-hash rule), merged in split order.
use rule caption as caption_shard with:
    """Captions of one shard of a split, for a model with shards: N."""
    output:
        captions="results/captions/{dataset}/{model}/{seed}/shards/{split}.{shard}.parquet",
    log:
        "logs/captions/{dataset}/{model}/{seed}/shards/{split}.{shard}.log",
    benchmark:
        "benchmarks/captions/{dataset}/{model}/{seed}/shards/{split}.{shard}.tsv"
    wildcard_constraints:
        dataset=task_datasets("caption"),
        model=caption_models(sharded=True),
        seed=SEED_PATTERN,
    params:
        spec=caption_params,
        image_size=image_size_param,
        seed="{seed}",
        model_name="{model}",
        shard=shard_param,


use rule merge_prediction_shards as merge_caption_shards with:
    """The captions of a sharded model, in the split's image order."""
    input:
        shards=shard_files("results/captions/{dataset}/{model}/{seed}/shards/{split}.{shard}.parquet"),
        data="results/data/{dataset}/{split}.parquet",
    output:
        merged="results/captions/{dataset}/{model}/{seed}/{split}.parquet",
    log:
        "logs/captions/{dataset}/{model}/{seed}/{split}.merge.log",
    benchmark:
        "benchmarks/captions/{dataset}/{model}/{seed}/{split}.merge.tsv"
    wildcard_constraints:
        dataset=task_datasets("caption"),
        model=caption_models(sharded=True),
        seed=SEED_PATTERN,
    params:
        id_column="image_id",
