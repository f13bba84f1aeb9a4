"""The report as one self-contained HTML page: the tables (click a header to sort), the notes and
warnings, and the plots embedded as base64 PNGs. No network is needed to view it: no external
script, style sheet, font or image."""

from __future__ import annotations

import base64
import html

from robench.report.views import display_tables, effective_note, is_leaderboard, is_number, notes, title

SCRIPT = """
// Click a column header to sort by it; click again to reverse. Numbers sort as numbers ('24.10 ± 0.40 (3)'
// by 24.10); '-', 'incomplete' and empty cells always go last.
function cellKey(text) {
  const m = text.trim().match(/^[+-]?\\d+(\\.\\d+)?/);
  return m ? parseFloat(m[0]) : null;
}
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      const body = table.tBodies[0];
      const ascending = th.dataset.order !== "asc";
      table.querySelectorAll("th").forEach(function (h) { delete h.dataset.order; });
      th.dataset.order = ascending ? "asc" : "desc";
      const rows = Array.from(body.rows);
      const numeric = rows.some(function (r) { return cellKey(r.cells[column].textContent) !== null; });
      rows.sort(function (a, b) {
        const x = a.cells[column].textContent, y = b.cells[column].textContent;
        if (numeric) {
          const p = cellKey(x), q = cellKey(y);
          if (p === null || q === null) { return (p === null) - (q === null); }
          return ascending ? p - q : q - p;
        }
        return ascending ? x.localeCompare(y) : y.localeCompare(x);
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 13px; margin-bottom: 1em; }
th, td { padding: 3px 8px; border-bottom: 1px solid #ddd; white-space: nowrap; }
th { cursor: pointer; background: #f3f3f3; position: sticky; top: 0; }
th[data-order="asc"]::after { content: " \\25B2"; } th[data-order="desc"]::after { content: " \\25BC"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.scroll { overflow-x: auto; }
.warning { background: #fff3cd; border-left: 4px solid #e0a800; padding: 6px 10px; }
.note { color: #555; max-width: 70em; }
figure { margin: 1em 0; } img { max-width: 100%; border: 1px solid #eee; }
"""


def _table(header: list[str], rows: list[list[str]], numeric) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td class="num">{html.escape(c)}</td>' if num else f"<td>{html.escape(c)}</td>"
                                    for c, num in zip(row, numeric)) + "</tr>" for row in rows)
    return f'<div class="scroll"><table class="sortable"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def page(report, figures: dict[str, bytes] | None = None) -> str:
    """The page; `figures` (name -> PNG bytes) default to every plot when matplotlib is installed."""
    if figures is None:
        try:
            from robench.report.plots import figures as make_figures

            figures = make_figures(report)
        except ValueError:  # RobenchError: matplotlib missing; the page still has every table
            figures = {}
    parts = ["<h1>robench report</h1>"]
    views = display_tables(report)
    last_board = [name for name in views if is_leaderboard(name)][-1]
    for name, (header, rows) in views.items():
        if rows:
            numeric = [all(is_number(r[i]) for r in rows) for i in range(len(header))]
            parts.append(f"<h2>{html.escape(title(name))}</h2>{_table(header, rows, numeric)}")
        if name == last_board:
            parts.append(f'<p class="note">{html.escape(notes(report))}</p>')
            parts += [f'<p class="warning">Warning: {html.escape(w)}</p>' for w in report.warnings]
        if name == "effective":
            parts.append(f'<p class="note">{html.escape(effective_note(report.effective))}</p>')
    if figures:
        parts.append("<h2>Plots</h2>")
        for name, png in figures.items():
            data = base64.b64encode(png).decode()
            parts.append(f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{html.escape(name)}</figcaption></figure>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>robench report</title>"
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(parts)
            + f"\n<script>{SCRIPT}</script>\n</body></html>\n")
