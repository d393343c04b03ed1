"""Roll forward on a real MariaDB: a v3 -> v1 rollback plan written as the next migration of
the v3 folder, applied with `dbroll migrate`, gives the schema of a fresh v1 database and
keeps every history row; its own undo puts v3 back."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import dbroll, query, schema_objects, write_files

UP = [
    (
        "customers",
        """
        CREATE TABLE customers (
          id INT AUTO_INCREMENT PRIMARY KEY,
          full_name VARCHAR(50) NOT NULL,
          phone VARCHAR(20) NULL
        );
        INSERT INTO customers (full_name, phone) VALUES ('Ada', '1'), ('Linus', NULL);
        """,
        "DROP TABLE customers;\n",
    ),
    (
        "orders",
        """
        CREATE TABLE orders (
          id INT AUTO_INCREMENT PRIMARY KEY,
          customer_id INT NOT NULL,
          total DECIMAL(10, 2) NOT NULL DEFAULT 0,
          CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id)
        );
        CREATE VIEW order_totals AS
          SELECT customer_id, SUM(total) AS total FROM orders GROUP BY customer_id;
        CREATE TRIGGER orders_no_negative BEFORE INSERT ON orders FOR EACH ROW
        BEGIN
          IF NEW.total < 0 THEN SET NEW.total = 0; END IF;
        END;
        """,
        "DROP TRIGGER orders_no_negative;\nDROP VIEW order_totals;\nDROP TABLE orders;\n",
    ),
    (
        "rename_full_name",
        """
        ALTER TABLE customers RENAME COLUMN full_name TO name,
          ADD COLUMN points INT NOT NULL DEFAULT 0;
        """,
        "ALTER TABLE customers DROP COLUMN points, RENAME COLUMN name TO full_name;\n",
    ),
]


def migration_files(fmt: str, count: int) -> dict[str, str]:
    files: dict[str, str] = {}
    for i, (name, up, down) in enumerate(UP[:count], start=1):
        if fmt == "flyway":
            files[f"V{i}__{name}.sql"] = up
            files[f"U{i}__{name}.sql"] = down
        elif fmt == "golang-migrate":
            files[f"{i:06d}_{name}.up.sql"] = up
            files[f"{i:06d}_{name}.down.sql"] = down
        else:
            files[f"2024010100000{i}_{name}.sql"] = (
                f"-- migrate:up\n{up.strip()}\n\n-- migrate:down\n{down}"
            )
    return files


def versions(fmt: str) -> list[str]:
    """The canonical versions (as plans and history write them) of v1, v2, v3."""
    if fmt == "dbmate":
        return [f"2024010100000{i}" for i in (1, 2, 3)]
    return ["1", "2", "3"]


def ok(r) -> None:
    assert r.exit_code == 0, r.stdout + r.stderr


def history(spec) -> list[tuple]:
    return query(spec, "SELECT id, version, kind, status, applied FROM dbroll_history ORDER BY id")


@pytest.fixture
def fresh_v1(mariadb, tmp_path):
    """The schema of a database that only ever saw v1 (in its own database)."""

    def make(fmt: str) -> dict:
        spec = mariadb.create_database()
        try:
            folder = write_files(tmp_path / f"fresh-{fmt}", migration_files(fmt, 1))
            ok(dbroll("migrate", "--migrations", str(folder), "--dsn", spec.to_dsn()))
            return schema_objects(spec)
        finally:
            mariadb.drop_database(spec)

    return make


@pytest.mark.parametrize("fmt", ["flyway", "dbmate", "golang-migrate"])
def test_roll_forward_takes_v3_back_to_v1_schema_keeping_history(db, tmp_path, fresh_v1, fmt):
    dsn = db.to_dsn()
    v3 = write_files(tmp_path / "v3", migration_files(fmt, 3))
    v1 = write_files(tmp_path / "v1", migration_files(fmt, 1))
    ok(dbroll("migrate", "--migrations", str(v3), "--dsn", dsn))
    schema_v3 = schema_objects(db)
    ok(dbroll("manifest", "build", "--migrations", str(v3), "--out", str(tmp_path / "man3")))
    ok(dbroll("manifest", "build", "--migrations", str(v1), "--out", str(tmp_path / "man1")))
    bundle = tmp_path / "rollback.tgz"
    plan = dbroll(
        "plan", "--from", str(tmp_path / "man3"), "--to", str(tmp_path / "man1"),
        "--out", str(bundle),
    )  # fmt: skip
    ok(plan)
    assert "undo rollback" in plan.stdout  # version 3 renames a column: not code-only
    rows_before = history(db)

    r = dbroll(
        "roll-forward", "--bundle", str(bundle), "--migrations", str(v3),
        "--reason", "INC-7: v3 breaks checkout", "--json",
    )  # fmt: skip
    ok(r)
    out = r.json
    v = versions(fmt)
    assert out["reverted"] == [v[2], v[1]]
    assert out["undo_included"] is True
    written = [Path(p) for p in out["written"]]
    assert all(p.parent == v3 and p.is_file() for p in written)
    text = written[0].read_text()
    assert "-- reason: INC-7: v3 breaks checkout" in text
    assert f"undoes version(s) {v[2]}, {v[1]} (newest first)" in text

    m = dbroll("migrate", "--migrations", str(v3), "--dsn", dsn, "--json")
    ok(m)
    ran = [s for s in m.json["steps"] if s["status"] == "applied"]
    assert [s["version"] for s in ran] == [out["version"]]
    assert schema_objects(db) == fresh_v1(fmt)
    assert query(db, "SELECT full_name FROM customers ORDER BY id") == [("Ada",), ("Linus",)]

    rows_after = history(db)
    assert rows_after[: len(rows_before)] == rows_before  # nothing deleted or changed
    new_rows = rows_after[len(rows_before) :]
    assert [(r[1], r[2], r[3], r[4]) for r in new_rows] == [
        (out["version"], "migrate", "success", 1)
    ]

    # the roll-forward can itself be undone: its undo re-applies versions 2 and 3
    u = dbroll("undo", "--migrations", str(v3), "--dsn", dsn, "--target", v[2])
    ok(u)
    assert schema_objects(db) == schema_v3


def test_roll_forward_from_manifests_or_the_folder_itself(tmp_path):
    v3 = write_files(tmp_path / "v3", migration_files("flyway", 3))
    v1 = write_files(tmp_path / "v1", migration_files("flyway", 1))
    ok(dbroll("manifest", "build", "--migrations", str(v3), "--out", str(tmp_path / "man3")))
    ok(dbroll("manifest", "build", "--migrations", str(v1), "--out", str(tmp_path / "man1")))

    out_a = tmp_path / "a"
    out_a.mkdir()
    r = dbroll(
        "roll-forward", "--from", str(tmp_path / "man3"), "--to", str(tmp_path / "man1"),
        "--migrations", str(v3), "--out-dir", str(out_a), "--reason", "r",
    )  # fmt: skip
    ok(r)
    assert "roll-forward 4 undoes version(s) 3, 2 (newest first)" in r.stdout
    assert sorted(p.name for p in out_a.iterdir()) == [
        "U4__rollforward_of_2_3.sql",
        "V4__rollforward_of_2_3.sql",
    ]
    assert sorted(p.name for p in v3.iterdir()) == sorted(migration_files("flyway", 3))

    # --from defaults to the --migrations folder; --to may be a folder too
    out_b = tmp_path / "b"
    out_b.mkdir()
    ok(
        dbroll(
            "roll-forward",
            "--to",
            str(v1),
            "--migrations",
            str(v3),
            "--out-dir",
            str(out_b),
            "--reason",
            "r",
        )  # fmt: skip
    )
    a = (out_a / "V4__rollforward_of_2_3.sql").read_text()
    b = (out_b / "V4__rollforward_of_2_3.sql").read_text()
    assert "-- source (deployed) image: local:" in a
    assert f"-- source (deployed) image: folder:{v3}" in b
    assert a.split("\n\n", 1)[1] == b.split("\n\n", 1)[1]  # the same SQL under the header

    # never overwritten: the same target again refuses before writing anything
    again = dbroll(
        "roll-forward", "--to", str(v1), "--migrations", str(v3), "--out-dir", str(out_b),
    )  # fmt: skip
    assert again.exit_code == 2
    assert "V4__rollforward_of_2_3.sql exists: never overwritten" in again.stderr
    assert (out_b / "V4__rollforward_of_2_3.sql").read_text() == b


def test_roll_forward_refusals(tmp_path):
    additive = {
        "V1__t.sql": "CREATE TABLE t (id INT);\n",
        "U1__t.sql": "DROP TABLE t;\n",
        "V2__c.sql": "ALTER TABLE t ADD COLUMN c INT NULL;\n",
        "U2__c.sql": "ALTER TABLE t DROP COLUMN c;\n",
    }
    v2 = write_files(tmp_path / "v2", additive)
    v1 = write_files(tmp_path / "v1", {k: additive[k] for k in ("V1__t.sql", "U1__t.sql")})
    ok(dbroll("manifest", "build", "--migrations", str(v2), "--out", str(tmp_path / "m2")))
    ok(dbroll("manifest", "build", "--migrations", str(v1), "--out", str(tmp_path / "m1")))
    bundle = tmp_path / "code-only.tgz"
    ok(
        dbroll(
            "plan",
            "--from",
            str(tmp_path / "m2"),
            "--to",
            str(tmp_path / "m1"),
            "--out",
            str(bundle),
        )
    )
    r = dbroll("roll-forward", "--bundle", str(bundle), "--migrations", str(v2))
    assert r.exit_code == 2
    assert "not a rollback with undo steps" in r.stderr
    assert sorted(p.name for p in v2.iterdir()) == sorted(additive)

    r = dbroll("roll-forward", "--migrations", str(v2))
    assert r.exit_code == 2 and "--bundle FILE, or --to REF" in r.stderr
    r = dbroll("roll-forward", "--bundle", str(bundle), "--to", str(v1), "--migrations", str(v2))
    assert r.exit_code == 2 and "not both" in r.stderr

    # a rollback whose deployed migration has no undo: the plan is blocked (exit 3)
    (v2 / "U2__c.sql").unlink()
    r = dbroll("roll-forward", "--to", str(v1), "--migrations", str(v2))
    assert r.exit_code == 3
    assert "[missing-undo] version 2" in r.stderr
