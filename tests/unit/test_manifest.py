"""Manifests: build from a folder, write, load, verify; the sha256 identifies them (pure)."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from pipeline.manifest import ManifestError, build_manifest, load_manifest, write_manifest
from pipeline.migrations.formats import load_migration_set
from tests.conftest import write_files

FLYWAY = {
    "V1__customers.sql": "CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(50));",
    "U1__customers.sql": "DROP TABLE customers;",
    "V2__rename.sql": "ALTER TABLE customers RENAME COLUMN name TO full_name;",
    "R__views.sql": "CREATE OR REPLACE VIEW v AS SELECT id FROM customers;",
}


def test_build_write_load_round_trip(tmp_path):
    src = write_files(tmp_path / "src", FLYWAY)
    m = build_manifest(load_migration_set(src), app_version="1.2.3")
    path = write_manifest(m, tmp_path / "out")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == m.sha256
    loaded = load_manifest(tmp_path / "out")
    assert loaded == m and loaded.sha256 == m.sha256
    assert [str(x.version) for x in loaded.migrations] == ["1", "2"]
    assert [x.klass for x in loaded.migrations] == ["additive", "breaking"]
    assert loaded.migrations[0].created_tables == ("customers",)
    assert loaded.migrations[1].undo is None
    # scripts keep the exact bytes whose checksum the history records
    for entry in loaded.migrations:
        data = (tmp_path / "out" / entry.up.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry.up.sha256
        assert entry.up.sha256 == hashlib.sha256((src / entry.up.source).read_bytes()).hexdigest()
    mset = loaded.to_migration_set()
    assert mset.get(mset.versions[0]).up.path == "V1__customers.sql"


def test_same_folder_same_sha_and_any_change_changes_it(tmp_path):
    src = write_files(tmp_path / "src", FLYWAY)
    a = build_manifest(load_migration_set(src)).sha256
    assert build_manifest(load_migration_set(src)).sha256 == a
    (src / "U1__customers.sql").write_text("DROP TABLE IF EXISTS customers;")
    assert build_manifest(load_migration_set(src)).sha256 != a


def test_dbmate_sections_are_stored_as_their_own_bytes(tmp_path):
    src = write_files(
        tmp_path / "src",
        {
            "20240101000000_a.sql": "-- migrate:up\nCREATE TABLE a (id INT);\n"
            "-- migrate:down\nDROP TABLE a;\n"
        },
    )
    mset = load_migration_set(src)
    m = build_manifest(mset)
    write_manifest(m, tmp_path / "out")
    entry = load_manifest(tmp_path / "out").migrations[0]
    assert entry.up.sha256 == mset.migrations[0].up.sha256
    assert entry.undo.sha256 == mset.migrations[0].undo.sha256
    assert (tmp_path / "out" / entry.undo.path).read_text().strip() == "DROP TABLE a;"


@pytest.mark.parametrize(
    "damage,what",
    [
        ("edit-sql", "does not match its sha256"),
        ("delete-sql", "is missing"),
        ("bad-json", "not a JSON manifest"),
        ("wrong-schema", "not a dbroll.manifest"),
        ("unsafe-path", "unsafe path '../../etc/passwd'"),
    ],
)
def test_tampered_manifests_are_refused_naming_the_file(tmp_path, damage, what):
    src = write_files(tmp_path / "src", FLYWAY)
    m = build_manifest(load_migration_set(src))
    out = tmp_path / "out"
    path = write_manifest(m, out)
    undo = out / m.migrations[0].undo.path
    if damage == "edit-sql":
        undo.write_text("DROP TABLE everything;")
    elif damage == "delete-sql":
        undo.unlink()
    elif damage == "bad-json":
        path.write_text("{not json")
    else:
        doc = json.loads(path.read_text())
        if damage == "wrong-schema":
            doc["schema"] = "other/v9"
        else:
            doc["migrations"][0]["undo"]["path"] = "../../etc/passwd"
        path.write_text(json.dumps(doc))
    with pytest.raises(ManifestError) as e:
        load_manifest(out)
    assert e.value.exit_code == 2
    text = str(e.value)
    assert "manifest.json" in text and what in text
    if damage in ("edit-sql", "delete-sql"):
        assert m.migrations[0].undo.path in text


def test_loaded_entries_equal_the_built_ones_field_by_field(tmp_path):
    # from_dict builds the frozen entries without their __init__ (pipeline.perf.frozen):
    # every field must be there, equal, and the objects must still be frozen
    src = write_files(
        tmp_path / "src",
        {
            **FLYWAY,
            "V1.10__orders.sql": "CREATE TABLE orders (id INT PRIMARY KEY);\n"
            "INSERT INTO customers (id, name) VALUES (1, 'a');",
            "U1.10__orders.sql": "DROP TABLE orders;",
        },
    )
    built = build_manifest(load_migration_set(src))
    write_manifest(built, tmp_path / "out")
    loaded = load_manifest(tmp_path / "out")
    assert any(m.findings for m in loaded.migrations)  # the case with findings is covered
    assert len(loaded.migrations) == len(built.migrations) == 3
    for a, b in zip(loaded.migrations, built.migrations, strict=True):
        assert vars(a) == vars(b)
        assert set(vars(a)) == {f.name for f in dataclasses.fields(a)}
        for ref in (a.up, a.undo):
            if ref is not None:
                assert set(vars(ref)) == {f.name for f in dataclasses.fields(ref)}
        assert vars(a.version) == vars(b.version)
        with pytest.raises(dataclasses.FrozenInstanceError):
            a.klass = "additive"  # type: ignore[misc]
        assert hash(a) == hash(b)


@pytest.mark.parametrize(
    ("entry", "what"),
    [
        ("not an object", "a string for a migration"),
        ({"description": "x"}, "no version"),
        ({"version": "1", "up": "sql/up/1.sql"}, "a string for a script"),
        ({"version": "1.x", "up": {"path": "p", "source": "s", "sha256": "0"}}, "bad version"),
        ({"version": "1", "up": {"path": "p", "source": "s"}}, "a script without sha256"),
        (
            {"version": "1", "up": {"path": "p", "source": "s", "sha256": "0"}, "findings": [1]},
            "a finding that is not an object",
        ),
    ],
)
def test_malformed_entries_are_refused_naming_the_manifest(tmp_path, entry, what):
    src = write_files(tmp_path / "src", FLYWAY)
    path = write_manifest(build_manifest(load_migration_set(src)), tmp_path / "out")
    doc = json.loads(path.read_text())
    doc["migrations"].append(entry)
    path.write_text(json.dumps(doc))
    with pytest.raises(ManifestError) as e:
        load_manifest(tmp_path / "out")
    assert e.value.exit_code == 2, what
    assert "manifest.json" in str(e.value) and "malformed manifest entry" in str(e.value), what
