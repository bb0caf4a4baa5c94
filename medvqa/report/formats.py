"""Rendering one table (header, text rows, notes) as Markdown, LaTeX and HTML.

The table stages build text cells once and render them here, so the three formats always
show the same numbers. Cells may contain "±" and "–"; LaTeX gets ``$\\pm$`` and ``--``.
Notes are the table's footnote block (the protocol the numbers were computed under).
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "<": r"\textless{}", ">": r"\textgreater{}", "±": r"$\pm$", "–": "--", "—": "---",
}
_LATEX_PATTERN = re.compile("|".join(re.escape(k) for k in _LATEX_SPECIAL))


def latex_escape(text: object) -> str:
    """``text`` with LaTeX's special characters escaped; other non-ASCII is left to inputenc."""
    return _LATEX_PATTERN.sub(lambda m: _LATEX_SPECIAL[m.group(0)], str(text))


def _md_cell(text: object) -> str:
    # A pipe would end the cell and a newline the row.
    return str(text).replace("|", "\\|").replace("\n", " ")


def alignment(header: Sequence[str], align: str | None) -> str:
    """One of 'l'/'r' per column: given, or the first column left and the rest (numbers) right."""
    align = align or "l" + "r" * (len(header) - 1)
    if len(align) != len(header) or set(align) - {"l", "r"}:
        raise ValueError(f"alignment {align!r} does not fit {len(header)} columns")
    return align


def markdown_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], notes: Sequence[str], title: str, align: str | None = None
) -> str:
    """A GitHub pipe table under a bold title, followed by a numbered notes block."""
    rule = {"l": ":---", "r": "---:"}
    lines = [f"**{_md_cell(title)}**", ""]
    lines.append("| " + " | ".join(_md_cell(h) for h in header) + " |")
    lines.append("|" + "|".join(rule[a] for a in alignment(header, align)) + "|")
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    if notes:
        lines += ["", "Notes:", ""]
        lines += [f"{i}. {' '.join(str(note).split())}" for i, note in enumerate(notes, 1)]
    return "\n".join(lines) + "\n"


def latex_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    notes: Sequence[str],
    title: str,
    label: str,
    align: str | None = None,
) -> str:
    """A ``table`` float with a booktabs tabular and the notes in a footnotesize block below.

    Needs ``\\usepackage{booktabs}`` in the paper's preamble.
    """
    spec = alignment(header, align)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{latex_escape(title)}}}",
        rf"\label{{{label}}}",
        r"\small",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(latex_escape(h) for h in header) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if notes:
        lines += [r"\par\smallskip", r"\begin{minipage}{\linewidth}", r"\footnotesize"]
        lines += [rf"\textsuperscript{{{i}}}{latex_escape(note)}\par" for i, note in enumerate(notes, 1)]
        lines.append(r"\end{minipage}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def html_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], notes: Sequence[str], title: str, align: str | None = None
) -> str:
    """A standalone HTML page: the table and an ordered list of notes (for the Snakemake report)."""
    esc = html.escape
    sides = ["left" if a == "l" else "right" for a in alignment(header, align)]
    head = "".join(f'<th style="text-align:{side}">{esc(h)}</th>' for h, side in zip(header, sides))
    body = "".join(
        "<tr>" + "".join(f'<td style="text-align:{side}">{esc(str(c))}</td>' for c, side in zip(row, sides)) + "</tr>\n"
        for row in rows
    )
    items = "".join(f"<li>{esc(n)}</li>\n" for n in notes)
    style = (
        "body{font-family:sans-serif;font-size:14px}table{border-collapse:collapse}"
        "th,td{border-bottom:1px solid #ccc;padding:3px 8px}ol{font-size:12px;max-width:60em}"
    )
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f"<style>{style}</style></head>\n<body><h3>{esc(title)}</h3>\n"
        f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>\n"
        f"<ol>\n{items}</ol></body></html>\n"
    )
