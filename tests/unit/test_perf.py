"""pipeline.perf.dumps_indented: the same string as json.dumps for plan.json's layout (pure)."""

from __future__ import annotations

import json
from collections import OrderedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.perf import dumps_indented, gc_paused


def reference(obj) -> str:
    return json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False)


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
plain = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(plain)
def test_the_same_string_as_json_dumps(obj):
    assert dumps_indented(obj) == reference(obj)


@pytest.mark.parametrize(
    "obj",
    [
        {},
        [],
        {"a": {}, "b": [], "c": [{}], "d": [[]]},
        {"é": 'naïve ✓ \u2028 \x00 "quoted" \\ \n\t', "z": -0.0, "y": 1e300, "x": 2**70},
        {"b": 1, "a": [True, False, None, 1.5, "s"], "B": {"nested": {"deep": [1, [2, [3]]]}}},
    ],
)
def test_edge_values(obj):
    assert dumps_indented(obj) == reference(obj)


class Str(str):
    def __str__(self):  # json.dumps ignores this; a naive encoder might not
        return "other"


@pytest.mark.parametrize(
    "obj",
    [
        {1: "int key", 2: "another"},  # json converts the keys to strings
        {"nan": float("nan"), "inf": float("inf")},  # NaN, Infinity
        OrderedDict([("b", 1), ("a", 2)]),  # a dict subclass
        {"s": Str("x")},
        {"t": True, 3: "mixed"},  # key types json cannot sort: its own TypeError
        {"o": object()},  # not serializable: json's TypeError
    ],
)
def test_what_it_does_not_handle_is_json_dumps_own_answer(obj):
    try:
        expected = reference(obj)
    except (TypeError, ValueError) as e:
        with pytest.raises(type(e), match=str(e)[:20]):
            dumps_indented(obj)
    else:
        assert dumps_indented(obj) == expected


def test_a_cycle_is_refused_as_json_refuses_it():
    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        dumps_indented({"a": loop})


class Node:
    pass


def test_gc_paused_ages_what_the_block_made_without_walking_it():
    import gc

    gc.collect()
    with gc_paused():
        made = [Node() for _ in range(5000)]
        assert not gc.isenabled() and gc.get_count()[0] >= 5000
    assert gc.isenabled() and gc.get_freeze_count() == 0
    # the next young collection has none of them to walk: they are in the oldest generation
    assert gc.get_count()[0] < 100, gc.get_count()
    assert sum(gc.is_tracked(n) for n in made) == 5000
    assert any(o is made[0] for o in gc.get_objects(generation=2))


def test_gc_paused_leaves_cycles_to_a_full_collection_and_frozen_objects_frozen():
    import gc
    import weakref

    with gc_paused():
        a, b = Node(), Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        del a, b
    assert gone() is not None  # paused: nothing collected
    gc.collect()
    assert gone() is None  # a full collection still finds the cycle

    kept = Node()
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with gc_paused():
            [Node() for _ in range(100)]
        assert gc.get_freeze_count() == frozen  # not unfrozen by the block
        assert gc.is_tracked(kept)
    finally:
        gc.unfreeze()
