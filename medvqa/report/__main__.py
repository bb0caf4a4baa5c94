"""Command line of the report stages, for use without Snakemake.

    python -m medvqa.report curves --history "seed 0" H.csv --png C.png --pdf C.pdf
    python -m medvqa.report reliability --metrics M.json --png R.png --pdf R.pdf
    python -m medvqa.report comparison --run MODEL SEED M.json [--run ...] --png B.png --pdf B.pdf
    python -m medvqa.report gallery --data D.parquet --captions C.parquet --png G.png --pdf G.pdf
    python -m medvqa.report attention --attention A.npy --attention-ids A.ids.json --data D.parquet \
        --predictions P.parquet --images I.npy --image-ids I.ids.json --png A.png --pdf A.pdf
    python -m medvqa.report table --run MODEL SEED M.json [...] --dataset NAME --split test --out results
    python -m medvqa.report published --entries E.json --run ... --dataset NAME --split test --out published
    python -m medvqa.report mcnemar --data D.parquet --run MODEL SEED P.parquet [...] --out mcnemar
    python -m medvqa.report seeds --run MODEL SEED M.json [...] --out M.seeds.json

``--spec`` takes FigureSpec keys as JSON; ``--out X`` writes X.csv, X.md, X.tex and X.html
(mcnemar: X.json and X.csv). ``mcnemar`` and ``seeds`` run ``medvqa.evaluate.compare`` and
``medvqa.evaluate.seeds``, kept here beside the tables that show them.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from medvqa.evaluate import compare, seeds
from medvqa.io import cli_description, read_json, setup_logging
from medvqa.report import attention, bars, curves, gallery, published, reliability, tables
from medvqa.report.collect import load_runs
from medvqa.report.spec import FigureSpec

FIGURE_COMMANDS = ("curves", "reliability", "comparison", "gallery", "attention")
TABLE_FORMATS = ("csv", "md", "tex", "html")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m medvqa.report", description=cli_description(__doc__))
    p.add_argument("command", choices=(*FIGURE_COMMANDS, "table", "published", "mcnemar", "seeds"))
    p.add_argument("--run", nargs=3, action="append", default=[], metavar=("MODEL", "SEED", "FILE"),
                   help="a run and its metrics JSON (mcnemar: its predictions parquet); repeatable")
    p.add_argument("--history", nargs=2, action="append", default=[], metavar=("LABEL", "CSV"))
    for name in ("metrics", "data", "captions", "predictions", "attention", "attention-ids", "images",
                 "image-ids", "entries", "png", "pdf", "out", "dataset"):
        p.add_argument(f"--{name}")
    p.add_argument("--split", default="test")
    p.add_argument("--image-size", type=int, help="attention: the dataset's image_size (image_cache: none)")
    p.add_argument("--title", default="")
    p.add_argument("--spec", default="{}", help="FigureSpec keys as a JSON object")
    p.add_argument("--log", default=None)
    return p


def figure(args: argparse.Namespace) -> None:
    spec = FigureSpec.from_mapping(json.loads(args.spec), where="--spec")
    out = (args.png, args.pdf, spec, args.title)
    runs = [(m, s) for m, s, _ in args.run]
    if args.command == "curves":
        curves.plot_training_curves(dict(args.history), *out)
    elif args.command == "reliability":
        reliability.plot_reliability(args.metrics, *out)
    elif args.command == "comparison":
        bars.plot_model_comparison(load_runs(runs, [f for _, _, f in args.run]), *out)
    elif args.command == "gallery":
        gallery.plot_caption_gallery(args.data, args.captions, *out)
    else:
        inputs = attention.AttentionInputs(args.attention, args.attention_ids, args.data, args.predictions,
                                           args.images, args.image_ids, args.image_size)
        attention.plot_attention_maps(inputs, *out)


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    setup_logging(args.log)
    runs, files = [(m, int(s)) for m, s, _ in args.run], [f for _, _, f in args.run]
    outputs = {fmt: f"{args.out}.{fmt}" for fmt in TABLE_FORMATS}
    if args.command in FIGURE_COMMANDS:
        figure(args)
    elif args.command == "table":
        tables.results_table(load_runs(runs, files), args.dataset, args.split, outputs)
    elif args.command == "published":
        published.published_table(read_json(args.entries), load_runs(runs, files), args.dataset, args.split, outputs)
    elif args.command == "mcnemar":
        compare.compare_models(args.data, runs, files, f"{args.out}.json", f"{args.out}.csv")
    else:
        seeds.aggregate_metrics(files, [s for _, s in runs], args.out)


if __name__ == "__main__":
    main()
