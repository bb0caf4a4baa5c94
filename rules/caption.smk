# Caption generation with a zero-shot checkpoint or a fine-tuned run (BLIP, any HF VLM):
#   results/captions/{dataset}/{model}/{seed}/{split}.parquet
#       image_id, caption (first reference), generated, model, seconds_per_image, chunk
#   (+ {split}.parquet.parts/, deliberately not an output: the finished chunks of a killed job,
#    which the re-run skips; removed once every image has its caption)

rule caption:
    input:
        unpack(caption_inputs),
    output:
        captions="results/captions/{dataset}/{model}/{seed}/{split}.parquet",
    log:
        "logs/captions/{dataset}/{model}/{seed}/{split}.log",
    wildcard_constraints:
        dataset=task_datasets("caption"),
        model=caption_models(),
        seed=SEED_PATTERN,
    params:
        spec=caption_params,
        seed="{seed}",
        model_name="{model}",
    threads: 2
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=480,
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/caption.py"
