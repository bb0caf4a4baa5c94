# Inference (medvqa.inference.predict), one script for every family:
#   results/predictions/{dataset}/{model}/{seed}/{split}.parquet
#       classifiers: question_id, prediction, confidence, topk_answers, topk_probs
#       generative:  question_id, prediction, confidence, answer_prob, answer_prob_mean, samples
#   results/predictions/{dataset}/{model}/{seed}/{split}.attention.npy (+ .ids.json)
#       question-guided attention maps, for the families that have them (cnn_lstm)
#   results/predictions/{dataset}/{model}/{seed}/shards/{split}.{shard}.parquet
#       the shards of a model with shards: N > 1 (medvqa.inference.shards), merged into {split}.parquet


rule predict:
    """Answers of a classifier run for one split."""
    input:
        unpack(predict_inputs),
    output:
        predictions="results/predictions/{dataset}/{model}/{seed}/{split}.parquet",
    log:
        "logs/predictions/{dataset}/{model}/{seed}/{split}.log",
    benchmark:
        "benchmarks/predictions/{dataset}/{model}/{seed}/{split}.tsv"
    wildcard_constraints:
        model=classifier_models(attention=False),
        seed=SEED_PATTERN,
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=family_mem_mb,
        runtime=60,
    params:
        spec=predict_params,
        generate=generate_params,
        image_size=image_size_param,
    script:
        "../workflow_scripts/predict.py"


use rule predict as predict_with_attention with:
    """Answers of a classifier run, with its attention maps."""
    output:
        predictions="results/predictions/{dataset}/{model}/{seed}/{split}.parquet",
        attention="results/predictions/{dataset}/{model}/{seed}/{split}.attention.npy",
        attention_ids="results/predictions/{dataset}/{model}/{seed}/{split}.attention.ids.json",
    wildcard_constraints:
        model=classifier_models(attention=True),
        seed=SEED_PATTERN,


# Generative families decode answers token by token (model.generate settings: generate:).
use rule predict as generate_answers with:
    """Generated answers of a generative run for one split."""
    wildcard_constraints:
        model=models_of(GENERATIVE_FAMILIES, sharded=False),
        seed=SEED_PATTERN,
    resources:
        gpu=1,
        mem_mb=family_mem_mb,
        runtime=240,


# A model with shards: N answers each split as N jobs (stable id-hash rule), merged in split order.
use rule predict as generate_answers_shard with:
    """Generated answers of one shard of a split, for a model with shards: N."""
    output:
        predictions="results/predictions/{dataset}/{model}/{seed}/shards/{split}.{shard}.parquet",
    log:
        "logs/predictions/{dataset}/{model}/{seed}/shards/{split}.{shard}.log",
    benchmark:
        "benchmarks/predictions/{dataset}/{model}/{seed}/shards/{split}.{shard}.tsv"
    wildcard_constraints:
        model=models_of(GENERATIVE_FAMILIES, sharded=True),
        seed=SEED_PATTERN,
    resources:
        gpu=1,
        mem_mb=family_mem_mb,
        runtime=240,
    params:
        spec=predict_params,
        generate=generate_params,
        image_size=image_size_param,
        shard=shard_param,


rule merge_prediction_shards:
    """The predictions of a sharded model, in the split's question order."""
    input:
        shards=shard_files("results/predictions/{dataset}/{model}/{seed}/shards/{split}.{shard}.parquet"),
        data="results/data/{dataset}/{split}.parquet",
    output:
        merged="results/predictions/{dataset}/{model}/{seed}/{split}.parquet",
    log:
        "logs/predictions/{dataset}/{model}/{seed}/{split}.merge.log",
    benchmark:
        "benchmarks/predictions/{dataset}/{model}/{seed}/{split}.merge.tsv"
    wildcard_constraints:
        model=models_of(GENERATIVE_FAMILIES, sharded=True),
        seed=SEED_PATTERN,
    conda:
        "../envs/evaluate.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        id_column="question_id",
    script:
        "../workflow_scripts/merge_shards.py"
