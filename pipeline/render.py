"""Plain tables for terminals and markdown pages (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def render_table(
    header: Sequence[str], rows: Sequence[Sequence[Any]], *, markdown: bool = False
) -> str:
    cells = [[str(c) for c in header], *([str(c) for c in r] for r in rows)]
    if markdown:
        lines = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in cells[1:]]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    out = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)
