"""Two speed helpers for the pure core, where manifests and plans hold tens of thousands of
small objects. Standard library only.

- ``gc_paused()``: the cyclic collector's full passes over a large heap made parsing and
  planning superlinear; these build acyclic objects, so nothing is lost by pausing it.
- ``frozen(cls, values)``: a frozen dataclass's ``__init__`` calls ``object.__setattr__``
  once per field; building one from a complete field dict is one call. Only for values
  already checked and converted by the caller (``from_dict`` readers); the unit tests check
  that every such reader yields the same object as the class's own constructor.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

_new = object.__new__
_setattr = object.__setattr__


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (collect nothing) for the block."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def frozen(cls: type[T], values: dict[str, Any]) -> T:
    """An instance of the (non-slots) frozen dataclass `cls` whose fields are `values`,
    which must name every field (no defaults are filled in)."""
    obj = _new(cls)
    _setattr(obj, "__dict__", values)
    return obj
