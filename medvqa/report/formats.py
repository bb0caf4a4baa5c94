"""Rendering one table (header, text rows, notes) as Markdown, LaTeX and HTML.

The table stages build text cells once and render them here, so the three formats always
show the same numbers. Cells may contain "±", "–" and "†"; LaTeX gets ``$\\pm$``, ``--`` and
``\\textsuperscript{\\dag}``. A LaTeX table wider than a text line is split (``latex_parts``).
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
    "†": r"\textsuperscript{\dag}",
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


# The LaTeX width rule: a 6.5-inch text line (469 pt) holds about 100 characters of \small
# (9 pt) Computer Modern digits (0.5 em = 4.5 pt each), and \tabcolsep pads every column by
# 2 x 6 pt, about 3 characters. A table wider than that is split into parts stacked in the
# same float, each repeating the identifying (key) columns; no font is shrunk.
LATEX_LINE_CHARS = 100
LATEX_COLUMN_PADDING = 3


def latex_widths(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[int]:
    """Printed width of each column in characters (widest cell as displayed, plus padding)."""
    return [max(len(str(r[i])) for r in [header, *rows]) + LATEX_COLUMN_PADDING for i in range(len(header))]


def latex_parts(
    header: Sequence[str], rows: Sequence[Sequence[str]], key_columns: int = 1, line_chars: int = LATEX_LINE_CHARS
) -> list[list[int]]:
    """Column indices of each part: the key columns, then as many further columns (in order) as
    fit in ``line_chars``; a column wider than a line on its own still gets a part of its own."""
    widths = latex_widths(header, rows)
    keys, used = list(range(key_columns)), sum(widths[:key_columns])
    parts: list[list[int]] = []
    current: list[int] = []
    for i in range(key_columns, len(header)):
        if current and used + widths[i] > line_chars:
            parts.append(keys + current)
            current, used = [], sum(widths[:key_columns])
        current.append(i)
        used += widths[i]
    parts.append(keys + current)
    return parts


def _latex_tabular(header, rows, columns: list[int], spec: str, separators: Sequence[int]) -> list[str]:
    def line(cells: Sequence[str]) -> str:
        return " & ".join(latex_escape(cells[i]) for i in columns) + r" \\"

    lines = [rf"\begin{{tabular}}{{{''.join(spec[i] for i in columns)}}}", r"\toprule", line(header), r"\midrule"]
    for n, row in enumerate(rows):
        if n in separators and n > 0:
            lines.append(r"\midrule")
        lines.append(line(row))
    return lines + [r"\bottomrule", r"\end{tabular}"]


def latex_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    notes: Sequence[str],
    title: str,
    label: str,
    align: str | None = None,
    separators: Sequence[int] = (),
    key_columns: int = 1,
) -> str:
    """A ``table`` float of booktabs tabulars and the notes in a footnotesize block below.

    Columns that do not fit one text line (``latex_parts``) go to further tabulars under the
    first, each repeating the first ``key_columns`` columns. A ``\\midrule`` precedes each row
    index in ``separators`` (e.g. where the baselines start). Needs ``\\usepackage{booktabs}``.
    """
    spec = alignment(header, align)
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{latex_escape(title)}}}", rf"\label{{{label}}}",
             r"\small"]
    for n, columns in enumerate(latex_parts(header, rows, key_columns)):
        if n:
            lines.append(r"\par\medskip")
        lines += _latex_tabular(header, rows, columns, spec, separators)
    if notes:
        lines += [r"\par\smallskip", r"\begin{minipage}{\linewidth}", r"\footnotesize"]
        lines += [rf"\textsuperscript{{{i}}}{latex_escape(note)}\par" for i, note in enumerate(notes, 1)]
        lines.append(r"\end{minipage}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def html_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], notes: Sequence[str], title: str, align: str | None = None,
    separators: Sequence[int] = (),
) -> str:
    """A standalone HTML page: the table and an ordered list of notes (for the Snakemake report)."""
    esc = html.escape
    sides = ["left" if a == "l" else "right" for a in alignment(header, align)]
    head = "".join(f'<th style="text-align:{side}">{esc(h)}</th>' for h, side in zip(header, sides))
    body = "".join(
        ('<tr class="group">' if n in separators and n > 0 else "<tr>")
        + "".join(f'<td style="text-align:{side}">{esc(str(c))}</td>' for c, side in zip(row, sides)) + "</tr>\n"
        for n, row in enumerate(rows)
    )
    items = "".join(f"<li>{esc(n)}</li>\n" for n in notes)
    style = (
        "body{font-family:sans-serif;font-size:14px}table{border-collapse:collapse}"
        "th,td{border-bottom:1px solid #ccc;padding:3px 8px}tr.group td{border-top:2px solid #666}"
        "ol{font-size:12px;max-width:60em}"
    )
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f"<style>{style}</style></head>\n<body><h3>{esc(title)}</h3>\n"
        f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>\n"
        f"<ol>\n{items}</ol></body></html>\n"
    )
