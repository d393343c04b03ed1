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
    try:  # strict: a row longer or shorter than the header stops here, in the same pass
        widths = [max(map(len, col)) for col in zip(*cells, strict=True)]
    except ValueError:
        raise ValueError(f"every row needs {len(header)} cells: {header!r}") from None
    # one format string for every row: a plan over 10k migrations renders 10k rows
    line = "  ".join(f"{{:<{w}}}" for w in widths).format
    out = [line(*r).rstrip() for r in cells]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)
