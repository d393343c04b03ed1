"""The build stage end to end: manifests in moto ECR/S3 -> plan -> bundle -> apply-bundle."""

from __future__ import annotations

import json

import pytest

from tests.conftest import dbroll, query, schema_objects, write_files
from tests.e2e.conftest import V3

pytestmark = pytest.mark.e2e


def test_manifest_build_publish_show(release, aws, tmp_path):
    doc = json.loads((release["v3"]["build"] / "manifest.json").read_text())
    assert doc["schema"] == "dbroll.manifest/v1"
    assert [m["version"] for m in doc["migrations"]] == ["1", "2", "3", "4"]
    assert [m["class"] for m in doc["migrations"]][2:] == ["additive", "breaking"]
    # publishing the same manifest again is a no-op
    again = dbroll(
        "manifest",
        "publish",
        "--manifest",
        str(release["v3"]["build"]),
        "--image",
        "shop:v3",
        "--bucket",
        "art",
    )
    assert again.exit_code == 0 and "already published" in again.stdout
    # another manifest for the same digest is refused
    clash = dbroll(
        "manifest",
        "publish",
        "--manifest",
        str(release["v2"]["build"]),
        "--image",
        f"shop@{release['v3']['digest']}",
        "--bucket",
        "art",
    )
    assert clash.exit_code == 3 and "different manifest" in clash.stderr
    # show by tag and by digest gives the same manifest
    by_tag = dbroll("manifest", "show", "shop:v3", "--bucket", "art", "--json").json
    by_digest = dbroll(
        "manifest", "show", f"shop@{release['v3']['digest']}", "--bucket", "art", "--json"
    ).json
    assert by_tag["sha256"] == by_digest["sha256"] == release["v3"]["sha"]
    assert by_tag["image"]["digest"] == release["v3"]["digest"]
    local = dbroll("manifest", "show", str(release["v3"]["build"]), "--json").json
    assert local["sha256"] == release["v3"]["sha"]
    missing = dbroll("manifest", "show", "shop:v9", "--bucket", "art")
    assert missing.exit_code == 2 and "shop:v9" in missing.stderr


def test_rollback_plan_bundle_apply(release, aws, mariadb, db, tmp_path):
    dsn = db.to_dsn()
    assert dbroll("migrate", "--dsn", dsn, "--migrations", str(release["v3"]["dir"])).exit_code == 0
    query(db, "INSERT INTO customers (full_name) VALUES ('ann')")

    bundle = tmp_path / "rb.tgz"
    md = tmp_path / "plan.md"
    r = dbroll(
        "plan",
        "--from",
        "shop:v3",
        "--to",
        "shop:v1",
        "--dsn",
        dsn,
        "--bucket",
        "art",
        "--out",
        str(bundle),
        "--markdown",
        str(md),
        "--json",
    )
    assert r.exit_code == 0, r.stderr
    plan = r.json
    assert plan["strategy"] == "undo" and plan["direction"] == "rollback"
    assert [(s["action"], s["version"] or s["source"]) for s in plan["steps"]] == [
        ("undo", "4"),
        ("undo", "3"),
        ("repeatable", "R__views.sql"),
    ]
    assert plan["source"]["digest"] == release["v3"]["digest"]
    assert plan["target"]["digest"] == release["v1"]["digest"]
    assert md.read_text().startswith("**undo rollback")
    assert dbroll("bundle", "verify", str(bundle)).exit_code == 0

    # the bundle runs from S3 with no image and no repo
    s3 = aws.client("s3")
    s3.put_object(Bucket="art", Key="dbroll/bundles/rb.tgz", Body=bundle.read_bytes())
    applied = dbroll("apply-bundle", "s3://art/dbroll/bundles/rb.tgz", "--dsn", dsn)
    assert applied.exit_code == 0, applied.stderr

    reference = mariadb.create_database()
    try:
        assert (
            dbroll(
                "migrate", "--dsn", reference.to_dsn(), "--migrations", str(release["v1"]["dir"])
            ).exit_code
            == 0
        )
        assert schema_objects(db) == schema_objects(reference)
    finally:
        mariadb.drop_database(reference)
    assert query(db, "SELECT name FROM customers") == [("ann",)]  # data kept through the undo
    rows = query(
        db,
        "SELECT version, kind, status, bundle, image FROM dbroll_history "
        "WHERE kind IN ('undo', 'repeatable') ORDER BY id",
    )
    sha = dbroll("bundle", "verify", str(bundle), "--json").json["sha256"]
    assert [(v, k, s) for v, k, s, *_ in rows][-3:] == [
        ("4", "undo", "success"),
        ("3", "undo", "success"),
        (None, "repeatable", "success"),
    ]
    assert all(b == sha and i == release["v3"]["digest"] for *_, b, i in rows[-3:])
    st = dbroll("status", "--dsn", dsn, "--migrations", str(release["v1"]["dir"]), "--json").json
    assert st["applied"] == ["1", "2"] and st["blocked"] is None

    # a second apply is a no-op
    before = query(db, "SELECT COUNT(*) FROM dbroll_history")
    again = dbroll("apply-bundle", str(bundle), "--dsn", dsn)
    assert again.exit_code == 0 and "nothing to do" in again.stdout
    assert query(db, "SELECT COUNT(*) FROM dbroll_history") == before


def test_stale_plan_is_refused_before_any_change(release, aws, db, tmp_path):
    dsn = db.to_dsn()
    assert dbroll("migrate", "--dsn", dsn, "--migrations", str(release["v2"]["dir"])).exit_code == 0
    bundle = tmp_path / "rb.tgz"
    r = dbroll(
        "plan",
        "--from",
        "shop:v2",
        "--to",
        "shop:v1",
        "--dsn",
        dsn,
        "--bucket",
        "art",
        "--strategy",
        "undo",
        "--out",
        str(bundle),
    )
    assert r.exit_code == 0, r.stderr
    # someone deploys v3 after the plan was made
    assert dbroll("migrate", "--dsn", dsn, "--migrations", str(release["v3"]["dir"])).exit_code == 0
    before_rows = query(db, "SELECT * FROM dbroll_history")
    before_schema = schema_objects(db)
    stale = dbroll("apply-bundle", str(bundle), "--dsn", dsn)
    assert stale.exit_code == 3 and "stale plan" in stale.stderr
    assert query(db, "SELECT * FROM dbroll_history") == before_rows
    assert schema_objects(db) == before_schema


def test_code_only_rollback_records_a_row_and_changes_no_schema(release, aws, db, tmp_path):
    dsn = db.to_dsn()
    assert dbroll("migrate", "--dsn", dsn, "--migrations", str(release["v2"]["dir"])).exit_code == 0
    before = schema_objects(db)
    bundle = tmp_path / "co.tgz"
    r = dbroll(
        "plan",
        "--from",
        "shop:v2",
        "--to",
        "shop:v1",
        "--dsn",
        dsn,
        "--bucket",
        "art",
        "--out",
        str(bundle),
        "--json",
    )
    assert r.exit_code == 0 and r.json["strategy"] == "code-only"
    assert [x["version"] for x in r.json["reverted"]] == ["3"]
    assert dbroll("apply-bundle", str(bundle), "--dsn", dsn).exit_code == 0
    assert schema_objects(db) == before
    rows = query(db, "SELECT kind, status FROM dbroll_history WHERE kind = 'code_rollback'")
    assert rows == [("code_rollback", "success")]
    # the v1 image's container starts on the v2 schema: tolerated as "future"
    start = dbroll("migrate", "--dsn", dsn, "--migrations", str(release["v1"]["dir"]))
    assert start.exit_code == 0 and "ahead" in start.stdout
    # classes of versions an image lacks come from the manifests given (v2 knows version 3)
    compat = dbroll("compat", "shop:v1", "shop:v2", "--dsn", dsn, "--bucket", "art", "--json")
    assert compat.exit_code == 0, compat.stderr
    assert [x["compatible"] for x in compat.json["results"]] == [True, True]
    assert compat.json["results"][0]["unknown_versions"] == ["3"]
    alone = dbroll("compat", "shop:v1", "--dsn", dsn, "--bucket", "art")
    assert alone.exit_code == 3 and "version 3 is in no known manifest" in alone.stdout
    st = dbroll(
        "status",
        "--dsn",
        dsn,
        "--migrations",
        str(release["v2"]["dir"]),
        "--image",
        "shop:v2",
        "--image",
        "shop:v1",
        "--bucket",
        "art",
        "--json",
    ).json
    assert st["oldest_compatible"] == "shop:v1"
    # a newer image runs after its start applied its own versions: say which
    ahead = dbroll(
        "status", "--dsn", dsn, "--migrations", str(release["v2"]["dir"]),
        "--image", "shop:v3", "--bucket", "art",
    )  # fmt: skip
    assert ahead.exit_code == 0, ahead.stderr
    assert "image:     shop:v3: can run once its start applies 4\n" in ahead.stdout
    # and code-only over a breaking change is refused
    assert dbroll("migrate", "--dsn", dsn, "--migrations", str(release["v3"]["dir"])).exit_code == 0
    refused = dbroll(
        "plan",
        "--from",
        "shop:v3",
        "--to",
        "shop:v1",
        "--dsn",
        dsn,
        "--bucket",
        "art",
        "--strategy",
        "code-only",
    )
    assert refused.exit_code == 3 and "not-additive" in refused.stdout
    compat = dbroll("compat", "shop:v1", "shop:v3", "--dsn", dsn, "--bucket", "art", "--json")
    assert compat.exit_code == 3
    assert [x["compatible"] for x in compat.json["results"]] == [False, True]


def test_plan_from_an_ecs_service_uses_the_running_digest(release, aws, db, tmp_path):
    ecs = aws.client("ecs")
    ecs.create_cluster(clusterName="prod")
    image = f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop@{release['v3']['digest']}"
    td = ecs.register_task_definition(
        family="shop",
        containerDefinitions=[
            {"name": "app", "image": image, "memory": 256, "essential": True},
            {"name": "sidecar", "image": "public.ecr.aws/nginx/nginx:latest", "memory": 64},
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(cluster="prod", serviceName="web", taskDefinition=td, desiredCount=1)
    dsn = db.to_dsn()
    assert dbroll("migrate", "--dsn", dsn, "--migrations", str(release["v3"]["dir"])).exit_code == 0
    r = dbroll(
        "plan",
        "--from-service",
        "prod/web",
        "--to",
        "shop:v2",
        "--dsn",
        dsn,
        "--bucket",
        "art",
        "--json",
    )
    assert r.exit_code == 0, r.stderr
    assert r.json["source"]["digest"] == release["v3"]["digest"]
    assert [s["version"] for s in r.json["steps"] if s["action"] == "undo"] == ["4"]
    missing = dbroll("plan", "--from-service", "prod/nope", "--to", "shop:v2", "--bucket", "art")
    assert missing.exit_code == 2 and "prod/nope" in missing.stderr


def test_failed_bundle_step_blocks_then_a_rerun_continues(release, aws, db, tmp_path):
    dsn = db.to_dsn()
    assert dbroll("migrate", "--dsn", dsn, "--migrations", str(release["v3"]["dir"])).exit_code == 0
    bundle = tmp_path / "rb.tgz"
    assert (
        dbroll(
            "plan",
            "--from",
            "shop:v3",
            "--to",
            "shop:v1",
            "--dsn",
            dsn,
            "--bucket",
            "art",
            "--out",
            str(bundle),
        ).exit_code
        == 0
    )
    # U3 drops orders.coupon then coupons: make its second statement fail
    query(
        db, "CREATE TABLE blocker (code VARCHAR(20), FOREIGN KEY (code) REFERENCES coupons (code))"
    )
    failed = dbroll("apply-bundle", str(bundle), "--dsn", dsn)
    assert failed.exit_code == 1 and "statement 2 of 2" in failed.stderr
    st = dbroll("status", "--dsn", dsn, "--migrations", str(release["v3"]["dir"]), "--json").json
    assert st["blocked"]["version"] == "3" and st["blocked"]["kind"] == "undo"
    assert st["blocked"]["statements_done"] == 1
    assert st["applied"] == ["1", "2", "3"]  # 4 was undone, 3 is half way
    query(db, "DROP TABLE blocker")  # the operator removes the cause
    again = dbroll("apply-bundle", str(bundle), "--dsn", dsn)
    assert again.exit_code == 0, again.stderr
    st = dbroll("status", "--dsn", dsn, "--migrations", str(release["v1"]["dir"]), "--json").json
    assert st["applied"] == ["1", "2"] and st["blocked"] is None
    assert query(db, "SHOW TABLES LIKE 'coupons'") == []


def test_bundle_show_prints_the_plan(release, aws, tmp_path):
    bundle = tmp_path / "rb.tgz"
    assert (
        dbroll(
            "plan", "--from", "shop:v3", "--to", "shop:v2", "--bucket", "art", "--out", str(bundle)
        ).exit_code
        == 0
    )
    shown = dbroll("bundle", "show", str(bundle))
    assert shown.exit_code == 0 and "undo rollback" in shown.stdout and "4" in shown.stdout
    as_json = dbroll("bundle", "show", str(bundle), "--json").json
    assert as_json["plan"]["strategy"] == "undo"
    assert as_json["files"] == ["sql/repeatable/views.sql", "sql/undo/4__rename_name.sql"]
    (tmp_path / "bad.tgz").write_bytes(bundle.read_bytes()[:-30])
    bad = dbroll("bundle", "verify", str(tmp_path / "bad.tgz"))
    assert bad.exit_code == 3 and "bad.tgz" in bad.stderr


def test_lint_cli_exit_codes_and_since(tmp_path):
    mdir = write_files(tmp_path / "m", V3)
    r = dbroll("lint", "--migrations", str(mdir))
    assert r.exit_code == 1 and "V4__rename_name.sql:1: rename-column [breaking]" in r.stdout
    assert "instead:" in r.stdout and "1 blocking finding" in r.stdout
    assert dbroll("lint", "--migrations", str(mdir), "--since", "4").exit_code == 0
    as_json = dbroll("lint", "--migrations", str(mdir), "--since", "2", "--json")
    assert [m["version"] for m in as_json.json["migrations"]] == ["3", "4"]
    assert as_json.json["blocking"] == 1
    write_files(
        mdir,
        {
            "V4__rename_name.sql": "-- dbroll:allow rename-column every reader "
            "is in this repo\n" + V3["V4__rename_name.sql"]
        },
    )
    allowed = dbroll("lint", "--migrations", str(mdir))
    assert allowed.exit_code == 0 and "[allowed]" in allowed.stdout


def test_outputs_that_cannot_be_written_are_usage_errors(release, tmp_path):
    """--out / --markdown naming a folder or a missing folder: exit 2 naming the flag and the
    path, not a traceback; the manifest's --out naming a file likewise."""
    plan = ("plan", "--from", str(release["v3"]["build"]), "--to", str(release["v2"]["build"]))
    for flag, path, why in (
        ("--out", tmp_path, "Is a directory"),
        ("--out", tmp_path / "no" / "rb.tgz", "No such file"),
        ("--markdown", tmp_path, "Is a directory"),
    ):
        r = dbroll(*plan, flag, str(path))
        assert r.exit_code == 2, r.stderr
        assert f"{flag} {path}: cannot write it ({why}" in r.stderr
        assert "Traceback" not in r.stderr
    afile = tmp_path / "afile"
    afile.write_text("hi")
    r = dbroll("manifest", "build", "--migrations", str(release["v3"]["dir"]), "--out", str(afile))
    assert r.exit_code == 2 and f"--out {afile}: cannot write the manifest there" in r.stderr
    assert afile.read_text() == "hi"
