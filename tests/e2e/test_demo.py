"""`dbroll demo` in the suite: the outcome (schema, service, history, data), not the text."""

from __future__ import annotations

import pytest

from pipeline.demo import EXAMPLE, RELEASES
from tests.conftest import dbroll, query, schema_objects, write_files

pytestmark = pytest.mark.e2e


def _release_files(release: str) -> dict[str, str]:
    last = RELEASES[release]
    return {
        f.name: f.read_text()
        for f in EXAMPLE.iterdir()
        if not (f.name[:1] in "VU" and int(f.name[1:].split("__")[0]) > last)
    }


def test_demo_ends_on_v1_code_with_v2_schema_and_no_data_lost(
    aws, mariadb, db, tmp_path, monkeypatch
):
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "1")
    r = dbroll("demo", "--dsn", db.to_dsn(), "--aws-endpoint", aws.endpoint, "--json")
    assert r.exit_code == 0, r.stderr[-3000:]
    steps = {s["name"]: s for s in r.json["steps"]}
    assert steps["rollback to v2"]["strategy"] == "undo"
    assert steps["rollback to v2"]["versions"] == "7, 6, 5"
    assert steps["rollback to v1"]["strategy"] == "code-only"
    # the undo dropped customers.loyalty_points: its values were backed up first
    assert "customers.loyalty_points" in steps["rollback to v2"]["at_risk"]
    (backup,) = aws.client("s3").list_objects_v2(
        Bucket="dbroll-demo-artifacts", Prefix="dbroll/backups/"
    )["Contents"][-1:]
    assert backup["Key"].endswith("manifest.json")
    # the schema is v2's (v1 code runs on v2's additive schema): compare with a fresh build
    reference = mariadb.create_database()
    try:
        mdir = write_files(tmp_path / "v2", _release_files("v2"))
        assert (
            dbroll("migrate", "--dsn", reference.to_dsn(), "--migrations", str(mdir)).exit_code == 0
        )
        assert schema_objects(db) == schema_objects(reference)
    finally:
        mariadb.drop_database(reference)
    # the service runs v1's image
    ecs = aws.client("ecs")
    svc = ecs.describe_services(cluster="demo", services=["shop"])["services"][0]
    image = ecs.describe_task_definition(taskDefinition=svc["taskDefinition"])["taskDefinition"][
        "containerDefinitions"
    ][0]["image"]
    v1 = aws.client("ecr").describe_images(repositoryName="shop", imageIds=[{"imageTag": "v1"}])
    assert image.endswith(v1["imageDetails"][0]["imageDigest"])
    # history: forward runs, the undo of 7..5, then the code-only rollback
    kinds = [k for (k,) in query(db, "SELECT kind FROM dbroll_history ORDER BY id")]
    assert kinds.count("undo") == 3 and kinds[-1] == "code_rollback"
    # the app's rows survived both rollbacks (the customer v3 added included)
    assert query(db, "SELECT COUNT(*) FROM customers")[0][0] == 4
    assert query(db, "SELECT COUNT(*) FROM orders WHERE channel = 'app'")[0][0] == 1
    assert query(db, "SELECT full_name FROM customers WHERE id = 4") == [("Edsger Dijkstra",)]
