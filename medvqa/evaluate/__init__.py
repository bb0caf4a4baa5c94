"""Evaluation: predictions / generated captions → metrics JSON with stated protocols.

Modules: ``normalise`` (answer normalisation and tokenisation), ``protocols`` (the registry
of named VQA protocols: scoring function, label, rules text, reference), ``reference_scores``
and ``vqa_eval_text`` (LLaVA-Med / MultiMedEval per-question rules and their normalisation),
``metrics`` (exact match, token F1, BLEU, ROUGE-L), ``calibration`` (ECE, MCE, Brier, overconfidence),
``stats`` (bootstrap CIs, exact McNemar, mean ± std across seeds), ``compare`` (pairwise McNemar of
the models of one split, Holm-adjusted: the compare_models stage), ``seeds`` (one model's metrics
aggregated over seeds: the aggregate_seeds stage), ``embedding`` (encoder cosine similarity),
``inputs`` (reading and id alignment) and ``score`` (the stage: ``score_vqa`` /
``score_captions``, also ``python -m medvqa.evaluate.score``).
The stage module is not imported here so that ``python -m`` runs it without a warning.
"""
