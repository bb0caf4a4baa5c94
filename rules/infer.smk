# Inference of the classifier families:
#   results/predictions/{dataset}/{model}/{seed}/{split}.parquet
#       question_id, prediction, confidence, topk_answers, topk_probs
#   results/predictions/{dataset}/{model}/{seed}/{split}.attention.npy (+ .ids.json)
#       question-guided attention maps, for the families that have them (cnn_lstm)

rule predict:
    input:
        unpack(predict_inputs),
    output:
        predictions="results/predictions/{dataset}/{model}/{seed}/{split}.parquet",
    log:
        "logs/predictions/{dataset}/{model}/{seed}/{split}.log",
    wildcard_constraints:
        model=classifier_models(attention=False),
        seed=SEED_PATTERN,
    params:
        spec=predict_params,
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=60,
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/predict.py"


use rule predict as predict_with_attention with:
    output:
        predictions="results/predictions/{dataset}/{model}/{seed}/{split}.parquet",
        attention="results/predictions/{dataset}/{model}/{seed}/{split}.attention.npy",
        attention_ids="results/predictions/{dataset}/{model}/{seed}/{split}.attention.ids.json",
    wildcard_constraints:
        model=classifier_models(attention=True),
        seed=SEED_PATTERN,
