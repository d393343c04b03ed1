"""The migration model: version parsing and ordering, and MigrationSet lookups."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.migrations.model import (
    ZERO,
    Migration,
    MigrationSet,
    Repeatable,
    Script,
    Version,
)

V = Version.parse


@pytest.mark.parametrize(
    ("text", "parts", "canonical"),
    [
        ("1", (1,), "1"),
        ("1.10", (1, 10), "1.10"),
        ("1.9", (1, 9), "1.9"),
        ("2_1", (2, 1), "2.1"),
        ("1.0", (1,), "1"),
        ("1_0_0", (1,), "1"),
        ("001", (1,), "1"),
        ("01.002", (1, 2), "1.2"),
        ("0", (), "0"),
        ("0.0", (), "0"),
        ("0.1", (0, 1), "0.1"),
        ("1.0.1", (1, 0, 1), "1.0.1"),
        ("20240101120000", (20240101120000,), "20240101120000"),
        ("1.2_3", (1, 2, 3), "1.2.3"),
    ],
)
def test_parse(text: str, parts: tuple[int, ...], canonical: str) -> None:
    v = V(text)
    assert v.text == text
    assert v.parts == parts
    assert str(v) == canonical
    assert V(str(v)) == v


@pytest.mark.parametrize(
    "text",
    ["", " 1", "1 ", "1.", ".1", "1..2", "1__2", "a", "1a", "v1", "1-2", "1.x", "١", "²", "+1"],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        V(text)


@pytest.mark.parametrize(
    ("low", "high"),
    [
        ("1.9", "1.10"),
        ("1", "2"),
        ("1", "1.0.1"),
        ("1.0", "1.1"),
        ("9", "10"),
        ("0", "0.0.1"),
        ("2_1", "2.2"),
        ("20231231235959", "20240101000000"),
    ],
)
def test_ordering(low: str, high: str) -> None:
    assert V(low) < V(high)
    assert V(high) > V(low)
    assert V(low) != V(high)
    assert max(V(low), V(high)) == V(high)


@pytest.mark.parametrize(
    ("a", "b"),
    [("2_1", "2.1"), ("1", "1.0"), ("1", "1.0.0"), ("1_0", "1.0.0"), ("001", "1"), ("0", "0.0")],
)
def test_equal_versions(a: str, b: str) -> None:
    assert V(a) == V(b)
    assert hash(V(a)) == hash(V(b))
    assert V(a) <= V(b) and V(a) >= V(b)
    assert len({V(a), V(b)}) == 1
    assert {V(a): "x"}[V(b)] == "x"


def test_sort_shuffled() -> None:
    texts = ["0.1", "1", "1.1", "1.2", "1.9", "1.10", "1.10.1", "2", "2_1", "10", "100"]
    for seed in range(20):
        shuffled = texts[:]
        random.Random(seed).shuffle(shuffled)
        assert [v.text for v in sorted(V(t) for t in shuffled)] == texts


def test_zero() -> None:
    assert V("0") == ZERO
    assert str(ZERO) == "0"
    assert ZERO < V("0.0.1") < V("1")


def test_direct_construction_normalises() -> None:
    assert Version("1.0", (1, 0)) == V("1")
    assert Version("1.0", (1, 0)).parts == (1,)
    with pytest.raises(ValueError):
        Version("-1", (-1,))


def test_version_is_frozen() -> None:
    v = V("1")
    with pytest.raises(AttributeError):
        v.parts = (2,)  # type: ignore[misc]


_parts = st.lists(st.integers(min_value=0, max_value=10**20), min_size=1, max_size=6)


def _strip(parts: list[int]) -> tuple[int, ...]:
    out = list(parts)
    while out and out[-1] == 0:
        out.pop()
    return tuple(out)


@st.composite
def _version_texts(draw: st.DrawFn) -> tuple[str, list[int]]:
    parts = draw(_parts)
    seps = draw(st.lists(st.sampled_from("._"), min_size=len(parts), max_size=len(parts)))
    zeros = draw(st.lists(st.integers(0, 2), min_size=len(parts), max_size=len(parts)))
    text = str(parts[0]).rjust(len(str(parts[0])) + zeros[0], "0")
    for part, sep, pad in zip(parts[1:], seps[1:], zeros[1:], strict=True):
        text += sep + "0" * pad + str(part)
    return text, parts


@given(_version_texts())
def test_property_roundtrip(case: tuple[str, list[int]]) -> None:
    text, parts = case
    v = V(text)
    assert v.text == text
    assert v.parts == _strip(parts)
    assert V(str(v)) == v
    assert str(V(str(v))) == str(v)


@given(_version_texts(), _version_texts())
def test_property_ordering_matches_stripped_tuples(
    a: tuple[str, list[int]], b: tuple[str, list[int]]
) -> None:
    va, vb = V(a[0]), V(b[0])
    ta, tb = _strip(a[1]), _strip(b[1])
    assert (va < vb) == (ta < tb)
    assert (va == vb) == (ta == tb)
    assert (va > vb) == (ta > tb)
    if va == vb:
        assert hash(va) == hash(vb)


def _migration(text: str, undo: bool = True) -> Migration:
    up = Script(path=f"V{text}__m.sql", sha256="0" * 64, text="SELECT 1;")
    down = Script(path=f"U{text}__m.sql", sha256="1" * 64, text="SELECT 2;") if undo else None
    return Migration(V(text), "m", up, down)


def test_migration_set_sorts_and_indexes() -> None:
    migrations = [_migration(t) for t in ["1.10", "2", "1.9", "1"]]
    repeatables = [
        Repeatable(n, n, Script(path=f"R__{n}.sql", sha256="2" * 64, text="x")) for n in "cab"
    ]
    s = MigrationSet("db", "flyway", tuple(migrations), tuple(repeatables))
    assert [str(v) for v in s.versions] == ["1", "1.9", "1.10", "2"]
    assert [r.name for r in s.repeatables] == ["a", "b", "c"]
    assert s.latest == V("2")
    assert s.get(V("1.9")) is migrations[2]
    assert s.get(V("1.0")) is migrations[3]
    assert s.get(V("3")) is None
    assert isinstance(s.migrations, tuple)
    assert s == MigrationSet("db", "flyway", tuple(reversed(migrations)), tuple(repeatables))
    assert hash(s) == hash(MigrationSet("db", "flyway", tuple(migrations), tuple(repeatables)))


def test_migration_set_empty() -> None:
    s = MigrationSet("db", "empty", (), ())
    assert s.versions == ()
    assert s.latest is None
    assert s.get(ZERO) is None


def test_migration_set_rejects_duplicate_versions() -> None:
    with pytest.raises(ValueError):
        MigrationSet("db", "flyway", (_migration("1"), _migration("1.0")), ())


def test_migration_defaults() -> None:
    m = _migration("1", undo=False)
    assert m.transaction is True
    assert m.undo is None


def test_get_is_constant_time_lookup() -> None:
    migrations = tuple(_migration(str(i)) for i in range(1, 20001))
    s = MigrationSet("db", "flyway", migrations, ())
    for i in range(1, 20001, 97):
        assert s.get(V(str(i))) is migrations[i - 1]


@pytest.mark.parametrize("text", ["7", "007", "0", "000", "1.10", "2_1", "1.0.0", "20240101120000"])
def test_parse_builds_what_the_constructor_builds(text: str) -> None:
    # parse() bypasses __init__ for speed (one digit group or several): same attributes
    parsed = V(text)
    built = Version(text, tuple(int(p) for p in text.replace("_", ".").split(".")))
    assert vars(parsed) == vars(built)
    assert hash(parsed) == hash(built) and str(parsed) == str(built)
