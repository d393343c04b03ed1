"""Speed helpers for the pure core, where manifests and plans hold tens of thousands of
small objects. Standard library only.

- ``gc_paused()``: the cyclic collector's full passes over a large heap made parsing and
  planning superlinear; these build acyclic objects, so nothing is lost by pausing it, or
  by moving them to the oldest generation unexamined afterwards.
- ``frozen(cls, values)``: a frozen dataclass's ``__init__`` calls ``object.__setattr__``
  once per field; building one from a complete field dict is one call. Only for values
  already checked and converted by the caller (``from_dict`` readers); the unit tests check
  that every such reader yields the same object as the class's own constructor.
- ``dumps_indented(obj)``: ``json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False)``,
  the layout of plan.json, about 2.5x faster: the standard library only has a C encoder
  for compact output. Same string, or it hands the whole job to ``json.dumps``.
"""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from json.encoder import encode_basestring as _quote  # the C one where it is built
from typing import Any, TypeVar

T = TypeVar("T")

_new = object.__new__
_setattr = object.__setattr__


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (collect nothing) for the block. What the block
    allocated then joins the oldest generation unexamined (gc.freeze, then gc.unfreeze: two
    list splices), rather than being walked object by object by the first young collection
    after the block: that walk over a plan of 100k migrations took longer per object than
    at 1k (cache misses), about a tenth of the plan's time. Nothing is lost: refcounting
    frees these acyclic objects, and a full collection still looks at all of them. Skipped
    when something else has frozen objects (unfreeze would release those too)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if gc.get_freeze_count() == 0:
            gc.freeze()
            gc.unfreeze()
        if was:
            gc.enable()


def frozen(cls: type[T], values: dict[str, Any]) -> T:
    """An instance of the (non-slots) frozen dataclass `cls` whose fields are `values`,
    which must name every field (no defaults are filled in)."""
    obj = _new(cls)
    _setattr(obj, "__dict__", values)
    return obj


class _NotPlain(Exception):
    """A value dumps_indented leaves to json.dumps (json's own conversions and errors)."""


def dumps_indented(obj: Any) -> str:
    """``json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False)``, the same string.

    Handles dicts with str keys, lists, tuples, str, int, finite float, bool and None, of
    exactly those types; anything else (subclasses, other keys, NaN, cycles) goes to
    json.dumps whole, so its conversions and errors are json's."""
    parts: list[str] = []
    add = parts.append

    def walk(o: Any, pad: str) -> None:
        t = type(o)
        if t is str:
            add(_quote(o))
        elif t is dict:
            if not o:
                add("{}")
                return
            inner = pad + "  "
            sep = "{\n" + inner
            for k in sorted(o):  # keys of mixed types: TypeError, left to json.dumps
                if type(k) is not str:
                    raise _NotPlain
                add(sep)
                add(_quote(k))
                add(": ")
                walk(o[k], inner)
                sep = ",\n" + inner
            add("\n" + pad + "}")
        elif t is list or t is tuple:
            if not o:
                add("[]")
                return
            inner = pad + "  "
            sep = "[\n" + inner
            for v in o:
                add(sep)
                walk(v, inner)
                sep = ",\n" + inner
            add("\n" + pad + "]")
        elif o is None:
            add("null")
        elif o is True:
            add("true")
        elif o is False:
            add("false")
        elif t is int:
            add(int.__repr__(o))
        elif t is float and math.isfinite(o):
            add(float.__repr__(o))
        else:
            raise _NotPlain

    try:
        walk(obj, "")
    except (_NotPlain, RecursionError, TypeError):
        return json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False)
    return "".join(parts)
