"""Plain-text numbers and aligned tables, shared by the analysis report and the CLI commands.

A leaf module (no gradpath imports) so that library layers such as ``analysis`` can render text without
importing ``commands``; see docs/ARCHITECTURE.md for the layers.
"""
from __future__ import annotations

from typing import Any, Sequence


def fmt_num(v: Any, digits: int = 2) -> str:
    """``None`` → ``-``; floats to ``digits`` decimals; ints of 10,000 and more with thousands separators."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    if isinstance(v, int) and abs(v) >= 10_000:
        return f"{v:,}"
    return str(v)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """Render rows as an aligned text table. ``align`` is one char per column, 'l' or 'r' (default: first
    column left, the rest right)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    align = align or "l" + "r" * (len(headers) - 1)

    def line(r: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(r, widths, align)).rstrip()

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)
