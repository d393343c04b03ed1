"""Compare two schema snapshots (pure: no database driver, no AWS).

A snapshot is the dict :func:`pipeline.db.snapshot.take_snapshot` returns (or its JSON
file). :func:`diff` lists what changes from `a` to `b` as :class:`Difference` values in
a fixed order (database, tables with their columns, indexes, keys and checks, views,
sequences, procedures, functions, triggers, events); each renders as one readable line:

    + table audit_log
    - index idx_x on orders
    table orders: column total: type decimal(10,2) -> decimal(12,2)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["FORMAT", "Difference", "SnapshotFormatError", "check_snapshot", "diff", "render_diff"]

FORMAT = 1  # the snapshot layout; bump when a key changes meaning

_SECTIONS = (
    ("tables", "table"),
    ("views", "view"),
    ("sequences", "sequence"),
    ("procedures", "procedure"),
    ("functions", "function"),
    ("triggers", "trigger"),
    ("events", "event"),
)
_EXCERPT = 72  # longer values (view definitions, bodies) are shown around their first difference


class SnapshotFormatError(ValueError):
    """The value is not a snapshot this version of dbroll can compare."""


@dataclass(frozen=True)
class Difference:
    """One change from snapshot a to snapshot b.

    change: "+" (only in b), "-" (only in a) or "~" (in both; `attribute` differs).
    subject: what changed ("table orders", "index idx_x on orders", "column total").
    context: the enclosing object of a nested subject ("table orders" for a column).
    detail: a short description of an added object (a column's type), optional.
    """

    change: str
    subject: str
    context: str = ""
    attribute: str = ""
    before: Any = None
    after: Any = None
    detail: str = ""

    def __str__(self) -> str:
        prefix = f"{self.context}: " if self.context else ""
        if self.change in ("+", "-"):
            return f"{prefix}{self.change} {self.subject}" + (
                f" {self.detail}" if self.detail else ""
            )
        before, after = _excerpts(_show(self.before), _show(self.after))
        return f"{prefix}{self.subject}: {self.attribute} {before} -> {after}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "change": self.change,
            "subject": self.subject,
            "context": self.context,
            "attribute": self.attribute,
            "before": self.before,
            "after": self.after,
            "text": str(self),
        }


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return "(" + ", ".join(_show(v) for v in value) + ")"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if text == "":
        return "''"
    return " ".join(text.split())  # one line, whatever the body's layout


def _excerpts(a: str, b: str) -> tuple[str, str]:
    """Both values whole when short; otherwise each around the first character they differ."""
    if len(a) <= _EXCERPT and len(b) <= _EXCERPT:
        return a, b
    same = 0
    while same < min(len(a), len(b)) and a[same] == b[same]:
        same += 1
    begin = max(0, same - 24)

    def cut(s: str) -> str:
        part = s[begin : begin + _EXCERPT]
        return ("…" if begin else "") + part + ("…" if begin + _EXCERPT < len(s) else "")

    return cut(a), cut(b)


def check_snapshot(value: Any, source: str = "snapshot") -> Mapping[str, Any]:
    """`value` when it is a snapshot of the supported format, else SnapshotFormatError."""
    if not isinstance(value, Mapping) or "format" not in value or "tables" not in value:
        raise SnapshotFormatError(f"{source} is not a dbroll schema snapshot")
    if value["format"] != FORMAT:
        raise SnapshotFormatError(
            f"{source} has snapshot format {value['format']!r}; this dbroll reads format {FORMAT}"
        )
    return value


# ---------------------------------------------------------------------------- diff


def diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[Difference]:
    """What changes from snapshot `a` to snapshot `b` (empty when the schemas are equal)."""
    check_snapshot(a, "the first snapshot")
    check_snapshot(b, "the second snapshot")
    out = _attributes(
        "database", "", a.get("database") or {}, b.get("database") or {}, ("charset", "collation")
    )
    for section, kind in _SECTIONS:
        sa, sb = a.get(section) or {}, b.get(section) or {}
        for name in _names(sa, sb):
            if name not in sb:
                out.append(Difference("-", _subject(kind, name, sa[name])))
            elif name not in sa:
                obj = sb[name]
                out.append(Difference("+", _subject(kind, name, obj), detail=_detail(kind, obj)))
            elif kind == "table":
                out += _table(name, sa[name], sb[name])
            else:
                out += _attributes(_subject(kind, name, sb[name]), "", sa[name], sb[name])
    return out


def _names(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    return sorted(set(a) | set(b))


def _subject(kind: str, name: str, obj: Any) -> str:
    if kind == "trigger" and isinstance(obj, Mapping) and obj.get("table"):
        return f"trigger {name} on {obj['table']}"
    return f"{kind} {name}"


def _detail(kind: str, obj: Any) -> str:
    if not isinstance(obj, Mapping):
        return ""
    if kind == "trigger":
        return f"({obj.get('timing')} {obj.get('event')})"
    if kind in ("procedure", "function"):
        return _show(obj.get("parameters") or [])
    return ""


_ATTRIBUTE_NAMES = {
    "ref_schema": "references schema",
    "ref_table": "references table",
    "ref_columns": "references columns",
    "on_update": "on update",
    "on_delete": "on delete",
    "check_option": "check option",
    "data_access": "data access",
    "on_completion": "on completion",
    "subpartition_method": "subpartition method",
    "subpartition_expression": "subpartition expression",
}


def _attributes(
    subject: str,
    context: str,
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    keys: Iterable[str] | None = None,
) -> list[Difference]:
    if keys is None:
        keys = [*a, *(k for k in b if k not in a)]
    return [
        Difference("~", subject, context, _ATTRIBUTE_NAMES.get(k, k), a.get(k), b.get(k))
        for k in keys
        if a.get(k) != b.get(k)
    ]


_TABLE_KEYS = ("type", "engine", "charset", "collation", "options", "comment", "partitioning")
_COLUMN_KEYS = ("type", "nullable", "default", "extra", "generated", "charset", "collation")
_COLUMN_KEYS += ("comment",)


def _column_detail(col: Mapping[str, Any]) -> str:
    parts = [str(col.get("type")), "NULL" if col.get("nullable") else "NOT NULL"]
    if col.get("default") is not None:
        parts.append(f"DEFAULT {col['default']}")
    if col.get("extra"):
        parts.append(str(col["extra"]))
    return " ".join(parts)


def _index_detail(index: Mapping[str, Any]) -> str:
    cols = "(" + ", ".join(index.get("columns") or []) + ")"
    itype = index.get("type")
    return (
        ("unique " if index.get("unique") else "")
        + cols
        + (f" {itype}" if itype and itype != "BTREE" else "")
    )


def _fk_detail(fk: Mapping[str, Any]) -> str:
    ref = f"{fk['ref_schema']}." if fk.get("ref_schema") else ""
    return (
        f"({', '.join(fk.get('columns') or [])}) -> {ref}{fk.get('ref_table')}"
        f"({', '.join(fk.get('ref_columns') or [])})"
    )


def _table(name: str, a: Mapping[str, Any], b: Mapping[str, Any]) -> list[Difference]:
    ctx = f"table {name}"
    out = _attributes(ctx, "", a, b, _TABLE_KEYS)

    cols_a = {c["name"]: c for c in a.get("columns") or []}
    cols_b = {c["name"]: c for c in b.get("columns") or []}
    out += [Difference("-", f"column {c}", ctx) for c in cols_a if c not in cols_b]
    for col, cb in cols_b.items():
        ca = cols_a.get(col)
        if ca is None:
            out.append(Difference("+", f"column {col}", ctx, detail=_column_detail(cb)))
        else:
            out += _attributes(f"column {col}", ctx, ca, cb, _COLUMN_KEYS)
    order_a = [c for c in cols_a if c in cols_b]
    order_b = [c for c in cols_b if c in cols_a]
    if order_a != order_b:
        out.append(Difference("~", "columns", ctx, "order", order_a, order_b))

    def index_subject(n: str) -> str:
        return f"primary key on {name}" if n == "PRIMARY" else f"index {n} on {name}"

    out += _keyed(a.get("indexes") or {}, b.get("indexes") or {}, index_subject, _index_detail)
    out += _keyed(
        a.get("foreign_keys") or {},
        b.get("foreign_keys") or {},
        lambda n: f"foreign key {n} on {name}",
        _fk_detail,
    )
    out += _keyed(
        {k: {"clause": v} for k, v in (a.get("checks") or {}).items()},
        {k: {"clause": v} for k, v in (b.get("checks") or {}).items()},
        lambda n: f"check {n} on {name}",
        lambda c: f"({c['clause']})",
    )
    return out


def _keyed(
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    subject: Callable[[str], str],
    detail: Callable[[Any], str],
) -> list[Difference]:
    out: list[Difference] = []
    for name in _names(a, b):
        if name not in b:
            out.append(Difference("-", subject(name)))
        elif name not in a:
            out.append(Difference("+", subject(name), detail=detail(b[name])))
        else:
            out += _attributes(subject(name), "", a[name], b[name])
    return out


# ---------------------------------------------------------------------------- render


def render_diff(
    differences: Sequence[Difference],
    *,
    before: str | None = None,
    after: str | None = None,
) -> str:
    """The differences one per line; with both labels, under a header naming the sides."""
    labelled = bool(before and after)
    if not differences:
        return "no differences: the schemas are equal" + (
            f" ({before} and {after})" if labelled else ""
        )
    lines = [str(d) for d in differences]
    if not labelled:
        return "\n".join(lines)
    header = f"{len(differences)} difference(s) from {before} to {after}:"
    return "\n".join([header, *(f"  {line}" for line in lines)])
