"""The McNemar table: ``results/metrics/{dataset}/mcnemar.{split}.json`` (written by
``medvqa.evaluate.compare.compare_models``) → ``results/tables/{dataset}/mcnemar.{split}.{md,tex,html}``
(the HTML is a report item), so the tests appear in the report as a table, not only as a CSV.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from medvqa.io import read_json
from medvqa.report.tables import write_formats

log = logging.getLogger(__name__)


def _p_text(p: float | None) -> str:
    if p is None:
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def mcnemar_table(json_path: str | os.PathLike, outputs: Mapping[str, str | os.PathLike], title: str) -> None:
    """Render ``mcnemar.{split}.json`` as Markdown / LaTeX / HTML (``outputs``: md, tex, html),
    so the tests appear in the report as a table, not only as a CSV download."""
    result = read_json(json_path)
    header = ["Model A", "Model B", "Seed", "n", "Acc. A (%)", "Acc. B (%)", "b", "c", "p", "p (Holm)"]
    rows = [
        [r["model_a"], r["model_b"], str(r["seed"]), str(r["n"]),
         "–" if r["accuracy_a"] is None else f"{100 * r['accuracy_a']:.1f}",
         "–" if r["accuracy_b"] is None else f"{100 * r['accuracy_b']:.1f}",
         str(r["b"]), str(r["c"]), _p_text(r["p_value"]), _p_text(r["p_holm"])]
        for r in result["pairs"]
    ]
    if not rows:
        rows = [["(fewer than two models share a seed: nothing to compare)", *[""] * (len(header) - 1)]]
    notes = [
        f"Test: {result['test']}. Pairing: {result['pairing']}. Correction: {result['correction']}.",
        "b: questions A answered correctly and B wrongly; c: the reverse.",
    ]
    write_formats(header, rows, notes, title, "tab:mcnemar", outputs, align="llrrrrrrrr")
    log.info("wrote McNemar table of %d pairs", len(result["pairs"]))
