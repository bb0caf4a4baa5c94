"""Reporting: metrics JSONs, histories and predictions → figures, tables and model comparisons.

Every function here reads files written by earlier stages and never loads a model, so the
whole report can be rebuilt from ``results/`` alone. Modules: ``spec`` (FigureSpec),
``figures`` (saving PNG + PDF, fixed samples), ``collect`` (metrics of several runs, one
metric over seeds), ``curves`` (training curves), ``reliability`` (reliability
diagrams), ``bars`` (model comparison bars), ``gallery`` (caption gallery), ``attention``
(CNN-LSTM attention maps), ``tables`` / ``formats`` / ``published`` (results tables in CSV,
Markdown, LaTeX and HTML) and ``mcnemar`` (the table of the pairwise McNemar tests that
``medvqa.evaluate.compare`` computes; mean ± std over seeds is ``medvqa.evaluate.seeds``).
``python -m medvqa.report --help`` runs each of them without Snakemake.
"""
