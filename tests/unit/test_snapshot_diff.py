"""The pure snapshot comparison: one readable line per difference, in a fixed order."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest

from pipeline.snapshot_diff import (
    FORMAT,
    Difference,
    SnapshotFormatError,
    check_snapshot,
    diff,
    render_diff,
)


def column(name, type_="int(11)", nullable=False, default=None, **kw):
    return {
        "name": name,
        "type": type_,
        "nullable": nullable,
        "default": default,
        "extra": kw.get("extra", ""),
        "charset": kw.get("charset"),
        "collation": kw.get("collation"),
        "comment": kw.get("comment", ""),
        "generated": kw.get("generated"),
    }


def index(*columns, unique=False, type_="BTREE"):
    return {
        "columns": list(columns),
        "unique": unique,
        "type": type_,
        "comment": "",
        "ignored": False,
    }


def table(columns, indexes=None, foreign_keys=None, checks=None, **kw):
    return {
        "type": "BASE TABLE",
        "engine": kw.get("engine", "InnoDB"),
        "charset": "utf8mb4",
        "collation": "utf8mb4_general_ci",
        "options": kw.get("options", ""),
        "comment": kw.get("comment", ""),
        "columns": columns,
        "indexes": indexes or {},
        "foreign_keys": foreign_keys or {},
        "checks": checks or {},
        "partitioning": None,
    }


def snapshot(**sections):
    base = {
        "format": FORMAT,
        "database": {"charset": "utf8mb4", "collation": "utf8mb4_general_ci"},
        "tables": {},
        "views": {},
        "sequences": {},
        "procedures": {},
        "functions": {},
        "triggers": {},
        "events": {},
    }
    base.update(sections)
    return base


BASE = snapshot(
    tables={
        "customers": table(
            [column("id", extra="auto_increment"), column("email", "varchar(120)")],
            {"PRIMARY": index("id", unique=True)},
        ),
        "orders": table(
            [
                column("id"),
                column("customer_id"),
                column("total", "decimal(10,2)", default="0.00"),
                column("note", "text", nullable=True, default="NULL"),
            ],
            {"PRIMARY": index("id", unique=True), "idx_x": index("customer_id", "total")},
            {
                "fk_customer": {
                    "columns": ["customer_id"],
                    "ref_schema": None,
                    "ref_table": "customers",
                    "ref_columns": ["id"],
                    "on_update": "RESTRICT",
                    "on_delete": "CASCADE",
                }
            },
            {"chk_total": "`total` >= 0"},
        ),
    },
    views={
        "big_orders": {
            "definition": "select `orders`.`id` AS `id` from `orders` where `orders`.`total` > 100",
            "check_option": "NONE",
            "security": "DEFINER",
            "algorithm": "UNDEFINED",
        }
    },
    triggers={
        "orders_bi": {
            "table": "orders",
            "timing": "BEFORE",
            "event": "INSERT",
            "order": 1,
            "body": "SET NEW.total = GREATEST(NEW.total, 0)",
        }
    },
    functions={
        "with_tax": {
            "parameters": ["x decimal(10,2)"],
            "body": "RETURN x * 1.2",
            "deterministic": True,
            "data_access": "CONTAINS SQL",
            "security": "DEFINER",
            "comment": "",
            "returns": "decimal(10,2)",
        }
    },
    procedures={
        "purge": {
            "parameters": ["IN days int(11)"],
            "body": "DELETE FROM orders WHERE id < days",
            "deterministic": False,
            "data_access": "CONTAINS SQL",
            "security": "DEFINER",
            "comment": "",
        }
    },
)


def changed(edit) -> list[str]:
    b = copy.deepcopy(BASE)
    edit(b)
    return [str(d) for d in diff(BASE, b)]


def test_equal_snapshots_have_no_differences():
    assert diff(BASE, copy.deepcopy(BASE)) == []
    assert render_diff([]) == "no differences: the schemas are equal"


def test_column_type():
    def edit(s):
        s["tables"]["orders"]["columns"][2]["type"] = "decimal(12,2)"

    assert changed(edit) == ["table orders: column total: type decimal(10,2) -> decimal(12,2)"]


def test_column_default_and_nullability():
    def edit(s):
        s["tables"]["orders"]["columns"][2]["default"] = "1.00"
        s["tables"]["orders"]["columns"][3]["nullable"] = False
        s["tables"]["orders"]["columns"][3]["default"] = None

    assert changed(edit) == [
        "table orders: column total: default 0.00 -> 1.00",
        "table orders: column note: nullable yes -> no",
        "table orders: column note: default NULL -> (none)",
    ]


def test_columns_added_removed_and_reordered():
    def edit(s):
        cols = s["tables"]["orders"]["columns"]
        cols.insert(1, cols.pop(2))  # total moves before customer_id
        cols.pop()  # note
        cols.append(column("paid_at", "datetime", nullable=True, default="NULL"))

    assert changed(edit) == [
        "table orders: - column note",
        "table orders: + column paid_at datetime NULL DEFAULT NULL",
        "table orders: columns: order (id, customer_id, total) -> (id, total, customer_id)",
    ]


def test_tables_added_and_removed():
    def edit(s):
        s["tables"]["audit_log"] = table([column("id")])
        del s["tables"]["customers"]

    assert changed(edit) == ["+ table audit_log", "- table customers"]


def test_table_options():
    def edit(s):
        s["tables"]["orders"]["engine"] = "Aria"
        s["tables"]["orders"]["comment"] = "sales"
        s["tables"]["orders"]["options"] = "row_format=COMPRESSED"

    assert changed(edit) == [
        "table orders: engine InnoDB -> Aria",
        "table orders: options '' -> row_format=COMPRESSED",
        "table orders: comment '' -> sales",
    ]


def test_indexes_added_removed_and_changed():
    def edit(s):
        idx = s["tables"]["orders"]["indexes"]
        del idx["idx_x"]
        idx["idx_total"] = index("total DESC")
        idx["uq_note"] = index("note(10)", unique=True)
        s["tables"]["customers"]["indexes"]["PRIMARY"]["columns"] = ["id", "email"]

    assert changed(edit) == [
        "primary key on customers: columns (id) -> (id, email)",
        "+ index idx_total on orders (total DESC)",
        "- index idx_x on orders",
        "+ index uq_note on orders unique (note(10))",
    ]


def test_index_uniqueness_and_fulltext():
    def edit(s):
        s["tables"]["orders"]["indexes"]["idx_x"]["unique"] = True
        s["tables"]["customers"]["indexes"]["ft"] = index("email", type_="FULLTEXT")

    assert changed(edit) == [
        "+ index ft on customers (email) FULLTEXT",
        "index idx_x on orders: unique no -> yes",
    ]


def test_foreign_keys():
    def edit(s):
        fk = s["tables"]["orders"]["foreign_keys"]["fk_customer"]
        fk["on_delete"] = "RESTRICT"
        s["tables"]["orders"]["foreign_keys"]["fk_other"] = {
            **fk,
            "ref_schema": "billing",
            "ref_table": "accounts",
            "columns": ["id"],
            "ref_columns": ["account_id"],
        }

    assert changed(edit) == [
        "foreign key fk_customer on orders: on delete CASCADE -> RESTRICT",
        "+ foreign key fk_other on orders (id) -> billing.accounts(account_id)",
    ]

    def drop(s):
        s["tables"]["orders"]["foreign_keys"].clear()

    assert changed(drop) == ["- foreign key fk_customer on orders"]


def test_checks():
    def edit(s):
        s["tables"]["orders"]["checks"]["chk_total"] = "`total` > 0"
        s["tables"]["customers"]["checks"]["chk_email"] = "`email` like '%@%'"

    assert changed(edit) == [
        "+ check chk_email on customers (`email` like '%@%')",
        "check chk_total on orders: clause `total` >= 0 -> `total` > 0",
    ]


def test_views():
    def edit(s):
        s["views"]["big_orders"]["definition"] = s["views"]["big_orders"]["definition"].replace(
            "100", "500"
        )
        s["views"]["recent"] = {"definition": "select 1 AS `1`"}

    out = changed(edit)
    assert out[0].startswith("view big_orders: definition ")
    assert "> 100" in out[0] and "> 500" in out[0]
    assert out[1] == "+ view recent"


def test_long_values_are_shown_around_the_first_difference():
    a = "select " + ", ".join(f"`c{i}`" for i in range(40)) + " from `t` where x = 1"
    b = a.replace("x = 1", "x = 2")
    d = Difference("~", "view v", attribute="definition", before=a, after=b)
    text = str(d)
    assert "x = 1 -> " in text and text.endswith("x = 2")
    assert text.startswith("view v: definition …")
    assert len(text) < len(a)


def test_triggers():
    def edit(s):
        s["triggers"]["orders_bi"]["timing"] = "AFTER"
        s["triggers"]["orders_bu"] = {**s["triggers"]["orders_bi"], "event": "UPDATE"}

    assert changed(edit) == [
        "trigger orders_bi on orders: timing BEFORE -> AFTER",
        "+ trigger orders_bu on orders (AFTER UPDATE)",
    ]

    def drop(s):
        del s["triggers"]["orders_bi"]

    assert changed(drop) == ["- trigger orders_bi on orders"]


def test_routines():
    def edit(s):
        s["functions"]["with_tax"]["body"] = "RETURN x * 1.25"
        s["procedures"]["purge"]["parameters"] = ["IN days int(11)", "IN dry tinyint(1)"]
        s["procedures"]["archive"] = {"parameters": [], "body": "BEGIN END"}

    assert changed(edit) == [
        "+ procedure archive ()",
        "procedure purge: parameters (IN days int(11)) -> (IN days int(11), IN dry tinyint(1))",
        "function with_tax: body RETURN x * 1.2 -> RETURN x * 1.25",
    ]


def test_database_collation_sequences_and_events():
    def edit(s):
        s["database"]["collation"] = "utf8mb4_unicode_ci"
        s["sequences"]["invoice_no"] = {"definition": "CREATE SEQUENCE `invoice_no`"}
        s["events"]["nightly"] = {"type": "RECURRING", "interval": "1 DAY", "body": "DO 1"}

    assert changed(edit) == [
        "database: collation utf8mb4_general_ci -> utf8mb4_unicode_ci",
        "+ sequence invoice_no",
        "+ event nightly",
    ]


def test_differences_are_json_serialisable():
    def edit(s):
        s["tables"]["orders"]["columns"][2]["type"] = "decimal(12,2)"

    b = copy.deepcopy(BASE)
    edit(b)
    [d] = diff(BASE, b)
    data = json.loads(json.dumps(d.to_dict()))
    assert data == {
        "change": "~",
        "subject": "column total",
        "context": "table orders",
        "attribute": "type",
        "before": "decimal(10,2)",
        "after": "decimal(12,2)",
        "text": "table orders: column total: type decimal(10,2) -> decimal(12,2)",
    }


def test_render_diff_with_labels():
    b = copy.deepcopy(BASE)
    del b["views"]["big_orders"]
    text = render_diff(diff(BASE, b), before="before.json", after="prod")
    assert text == "1 difference(s) from before.json to prod:\n  - view big_orders"
    assert render_diff(diff(BASE, b)) == "- view big_orders"
    assert render_diff([], before="a", after="b") == (
        "no differences: the schemas are equal (a and b)"
    )


@pytest.mark.parametrize(
    "value,message",
    [
        ({"tables": {}}, "not a dbroll schema snapshot"),
        ([], "not a dbroll schema snapshot"),
        ({"format": 99, "tables": {}}, "format 99"),
    ],
)
def test_wrong_format_is_refused(value, message):
    with pytest.raises(SnapshotFormatError, match=message):
        diff(value, BASE)
    with pytest.raises(SnapshotFormatError, match=message):
        check_snapshot(value)


def test_the_module_is_pure():
    code = (
        "import sys, pipeline.snapshot_diff; "
        "bad = [m for m in ('pymysql', 'boto3', 'botocore') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
