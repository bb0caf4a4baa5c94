# Data stages: source → validated split parquet → leakage audit, filters → answers, image cache,
# tokens, summary.
# Memory: import, filter, image cache and tokens stream in record batches, so mem_mb does not grow
# with the dataset (bench/bench_data_scale.py measures peak RSS at 1k-16k images: bench/RESULTS.md).


rule import_dataset:
    """Read a dataset source, validate every row and write the unified source splits."""
    output:
        train="results/data/{dataset}/source/train.parquet",
        val="results/data/{dataset}/source/val.parquet",
        test="results/data/{dataset}/source/test.parquet",
        rejected="results/data/{dataset}/rejected.csv",
        meta="results/data/{dataset}/source/meta.json",
    log:
        "logs/data/{dataset}/import.log",
    benchmark:
        "benchmarks/data/{dataset}/import.tsv"
    priority: PRIORITY_DATA
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=120,
    params:
        spec=import_params,
    script:
        "../workflow_scripts/import_dataset.py"


rule leakage_audit:
    """Duplicate and near-duplicate images within and across the imported splits (medvqa.data.leakage)."""
    input:
        unpack(source_splits("")),
    output:
        report="results/data/{dataset}/leakage.json",
        pairs="results/data/{dataset}/leakage_pairs.csv",
    log:
        "logs/data/{dataset}/leakage.log",
    benchmark:
        "benchmarks/data/{dataset}/leakage.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        spec=leakage_params,
    script:
        "../workflow_scripts/leakage_audit.py"


rule filter_split:
    """Apply the view's filters (question type, language, leakage, subsample) to one split."""
    input:
        unpack(leakage_filter_input),
        source=source_files("results/data/{dataset}/source/{split}.parquet"),
    output:
        "results/data/{dataset}/{split}.parquet",
    log:
        "logs/data/{dataset}/filter.{split}.log",
    benchmark:
        "benchmarks/data/{dataset}/filter.{split}.tsv"
    priority: PRIORITY_DATA
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        spec=filter_params,
    script:
        "../workflow_scripts/filter_split.py"


rule answers:
    """The answer vocabulary of the train split and the closed/open map."""
    input:
        unpack(split_files("results/data/{dataset}/{split}.parquet")),
    output:
        "results/data/{dataset}/answers.json",
    log:
        "logs/data/{dataset}/answers.log",
    benchmark:
        "benchmarks/data/{dataset}/answers.tsv"
    priority: PRIORITY_DATA
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../workflow_scripts/answers.py"


rule image_cache:
    """Decode and resize one split's images into a memory-mapped uint8 cache."""
    input:
        "results/data/{dataset}/{split}.parquet",
    output:
        cache="results/data/{dataset}/images_{size}.{split}.npy",
        ids="results/data/{dataset}/images_{size}.{split}.ids.json",
    log:
        "logs/data/{dataset}/images_{size}.{split}.log",
    benchmark:
        "benchmarks/data/{dataset}/images_{size}.{split}.tsv"
    priority: PRIORITY_DATA
    conda:
        "../envs/data.yaml"
    threads: IMAGE_CACHE_THREADS
    resources:
        mem_mb=2000,
        runtime=120,
    script:
        "../workflow_scripts/image_cache.py"


rule image_cache_png:
    """The same resized images as image_cache, PNG-encoded (lossless) in an Arrow IPC file (image_cache: png)."""
    input:
        "results/data/{dataset}/{split}.parquet",
    output:
        cache="results/data/{dataset}/images_{size}.{split}.png.arrow",
    log:
        "logs/data/{dataset}/images_{size}.{split}.png.log",
    benchmark:
        "benchmarks/data/{dataset}/images_{size}.{split}.png.tsv"
    priority: PRIORITY_DATA
    conda:
        "../envs/data.yaml"
    threads: IMAGE_CACHE_THREADS
    resources:
        mem_mb=2000,
        runtime=120,
    script:
        "../workflow_scripts/image_cache_png.py"


rule word_vocab:
    """The word vocabulary of the train split (tokenizers of kind words)."""
    input:
        "results/data/{dataset}/train.parquet",
    output:
        "results/data/{dataset}/tokens/{tokenizer}.vocab.json",
    log:
        "logs/data/{dataset}/tokens/{tokenizer}.vocab.log",
    benchmark:
        "benchmarks/data/{dataset}/tokens/{tokenizer}.vocab.tsv"
    priority: PRIORITY_DATA
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        spec=tokenizer_params,
    script:
        "../workflow_scripts/word_vocab.py"


rule tokenize_split:
    """Pre-tokenise one split's questions with a configured tokenizer."""
    input:
        unpack(tokenizer_inputs),
    output:
        "results/data/{dataset}/tokens/{tokenizer}.{split}.parquet",
    log:
        "logs/data/{dataset}/tokens/{tokenizer}.{split}.log",
    benchmark:
        "benchmarks/data/{dataset}/tokens/{tokenizer}.{split}.tsv"
    priority: PRIORITY_DATA
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        spec=tokenizer_params,
    script:
        "../workflow_scripts/tokenize_split.py"


rule summary:
    """summary.json: sizes, answers, baselines, rejected rows, filters and leakage of a view."""
    input:
        unpack(split_files("results/data/{dataset}/{split}.parquet")),
        unpack(source_splits("source_")),
        unpack(summary_cache_files),
        rejected=source_files("results/data/{dataset}/rejected.csv"),
        meta=source_files("results/data/{dataset}/source/meta.json"),
        leakage=source_files("results/data/{dataset}/leakage.json"),
    output:
        "results/data/{dataset}/summary.json",
    log:
        "logs/data/{dataset}/summary.log",
    benchmark:
        "benchmarks/data/{dataset}/summary.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        filters=filter_params,
        image_size=image_size_param,
        image_cache=image_cache_param,
    script:
        "../workflow_scripts/summary.py"
