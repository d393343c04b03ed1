"""Manifests: build from a folder, write, load, verify; the sha256 identifies them (pure)."""

from __future__ import annotations

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
    "damage", ["edit-sql", "delete-sql", "bad-json", "wrong-schema", "unsafe-path"]
)
def test_tampered_manifests_are_refused_naming_the_file(tmp_path, damage):
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
    assert "manifest.json" in text or "sql/undo" in text
