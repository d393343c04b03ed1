"""`dbroll rollback` on an ECS service (moto) and a real MariaDB: schema first, then code."""

from __future__ import annotations

import json

import pytest

from tests.conftest import dbroll, query, schema_objects
from tests.e2e.conftest import (
    run_rollback,
    run_worker,
    service_image,
    service_labels,
    service_tags,
)

pytestmark = pytest.mark.e2e


def test_undo_rollback_then_schema_and_service_match_the_target(
    release, aws, on_service, mariadb, db
):
    dsn = db.to_dsn()
    assert dbroll("migrate", "--dsn", dsn, "--migrations", str(release["v3"]["dir"])).exit_code == 0
    on_service(release["v3"]["digest"])
    dry = run_rollback(dsn, "shop:v1", "--dry-run")
    assert dry.exit_code == 0 and "dry run" in dry.stdout
    assert service_image(aws).endswith(release["v3"]["digest"])  # untouched
    r = run_rollback(dsn, "shop:v1")
    assert r.exit_code == 0, r.stderr
    assert service_image(aws) == (
        f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop@{release['v1']['digest']}"
    )
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
    audits = [
        o["Key"]
        for o in aws.client("s3")
        .list_objects_v2(Bucket="art", Prefix="dbroll/audit/")
        .get("Contents", [])
    ]
    assert len(audits) == 1
    record = json.loads(aws.client("s3").get_object(Bucket="art", Key=audits[0])["Body"].read())
    assert record["outcome"].startswith("prod/web runs shop:v1")
    assert record["task_exit"] == 0 and record["bundle_uri"].startswith("s3://art/dbroll/bundles/")
    assert record["plan"]["strategy"] == "undo" and record["caller"]
    # running it again: the service already runs the target
    again = run_rollback(dsn, "shop:v1")
    assert again.exit_code == 0 and "nothing to do" in again.stdout


def test_code_only_rollback_keeps_the_schema(release, aws, on_service, db):
    dsn = db.to_dsn()
    assert dbroll("migrate", "--dsn", dsn, "--migrations", str(release["v2"]["dir"])).exit_code == 0
    on_service(release["v2"]["digest"])
    before = schema_objects(db)
    r = run_rollback(dsn, "shop:v1", "--json")
    assert r.exit_code == 0, r.stderr
    assert r.json["plan"]["strategy"] == "code-only"
    assert schema_objects(db) == before
    assert query(db, "SELECT kind FROM dbroll_history WHERE kind = 'code_rollback'") == [
        ("code_rollback",)
    ]
    assert service_image(aws).endswith(release["v1"]["digest"])


def test_failed_database_step_leaves_the_service_untouched(release, aws, on_service, db):
    dsn = db.to_dsn()
    assert dbroll("migrate", "--dsn", dsn, "--migrations", str(release["v3"]["dir"])).exit_code == 0
    on_service(release["v3"]["digest"])
    query(
        db, "CREATE TABLE blocker (code VARCHAR(20), FOREIGN KEY (code) REFERENCES coupons (code))"
    )
    r = run_rollback(dsn, "shop:v1")
    assert r.exit_code == 1 and "service was not touched" in r.stderr
    s3 = aws.client("s3")
    (audit,) = s3.list_objects_v2(Bucket="art", Prefix="dbroll/audit/")["Contents"]
    record = json.loads(s3.get_object(Bucket="art", Key=audit["Key"])["Body"].read())
    assert record["outcome"].startswith("failed: the database step failed")
    assert record["task_exit"] == 1 and record["task_definition"] is None
    assert service_image(aws).endswith(release["v3"]["digest"])
    query(db, "DROP TABLE blocker")
    assert run_rollback(dsn, "shop:v1").exit_code == 0  # continues where it stopped
    assert service_image(aws).endswith(release["v1"]["digest"])


def test_blocked_plan_exits_3_and_changes_nothing(release, aws, on_service, db):
    dsn = db.to_dsn()
    assert dbroll("migrate", "--dsn", dsn, "--migrations", str(release["v3"]["dir"])).exit_code == 0
    on_service(release["v3"]["digest"])
    r = run_rollback(dsn, "shop:v1", "--strategy", "code-only")
    assert r.exit_code == 3 and "not-additive" in r.stderr
    assert service_image(aws).endswith(release["v3"]["digest"])


def test_deploy_forward_then_roll_back(release, aws, on_service, db):
    dsn = db.to_dsn()
    assert dbroll("migrate", "--dsn", dsn, "--migrations", str(release["v1"]["dir"])).exit_code == 0
    on_service(release["v1"]["digest"])
    older = dbroll(
        "deploy",
        "--cluster",
        "prod",
        "--service",
        "web",
        "--image",
        "shop:v1",
        "--executor",
        "local",
        "--dsn",
        dsn,
        "--bucket",
        "art",
    )
    assert older.exit_code == 0 and "nothing to do" in older.stdout
    r = dbroll(
        "deploy",
        "--cluster",
        "prod",
        "--service",
        "web",
        "--image",
        "shop:v3",
        "--executor",
        "local",
        "--dsn",
        dsn,
        "--bucket",
        "art",
    )
    assert r.exit_code == 0, r.stderr
    assert service_image(aws).endswith(release["v3"]["digest"])
    st = dbroll("status", "--dsn", dsn, "--migrations", str(release["v3"]["dir"]), "--json").json
    assert st["applied"] == ["1", "2", "3", "4"] and st["pending"] == []
    back = dbroll(
        "deploy",
        "--cluster",
        "prod",
        "--service",
        "web",
        "--image",
        "shop:v1",
        "--executor",
        "local",
        "--dsn",
        dsn,
        "--bucket",
        "art",
    )
    assert back.exit_code == 1 and "dbroll rollback" in back.stderr
    assert run_rollback(dsn, "shop:v1").exit_code == 0
    assert dbroll("status", "--dsn", dsn, "--migrations", str(release["v1"]["dir"]), "--json").json[
        "applied"
    ] == ["1", "2"]


def test_rollbacks_in_a_row_with_live_history_after_a_code_only_one(
    release, aws, on_service, db, tmp_path
):
    """Planned against the live history (--executor local --dsn): the version the code-only
    rollback kept is undone with v4's script, not refused as one neither image knows; and
    the service's label says whose migrations the schema holds, at every step."""
    from tests.conftest import history_rows
    from tests.e2e.conftest import V4, publish_release

    v4 = publish_release(tmp_path, aws.client("ecr"), "v4", V4)
    dsn = db.to_dsn()
    assert dbroll("migrate", "--dsn", dsn, "--migrations", str(v4["dir"])).exit_code == 0
    on_service(v4["digest"])
    first = run_rollback(dsn, "shop:v3", "--json")
    assert first.exit_code == 0, first.stderr
    assert first.json["plan"]["strategy"] == "code-only"
    assert first.json["plan"]["expected"]["schema_images"] == [v4["digest"]]
    assert service_labels(aws) == {"io.dbroll.schema-images": v4["digest"]}
    assert service_tags(aws) == {f"io.dbroll.schema-image/{v4['digest']}": "app"}

    # the manifest the label names is gone: a clear error naming both, nothing changed
    s3 = aws.client("s3")
    key = f"dbroll/manifests/shop/{v4['digest']}/manifest.json"
    saved = s3.get_object(Bucket="art", Key=key)["Body"].read()
    s3.delete_object(Bucket="art", Key=key)
    rows = history_rows(db)
    lost = run_rollback(dsn, "shop:v2")
    assert lost.exit_code == 2, lost.stderr
    assert "io.dbroll.schema-images" in lost.stderr and v4["digest"] in lost.stderr
    assert "dbroll manifest publish" in lost.stderr
    assert history_rows(db) == rows and service_image(aws).endswith(release["v3"]["digest"])
    s3.put_object(Bucket="art", Key=key, Body=saved)

    dry = run_rollback(dsn, "shop:v2", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert "label io.dbroll.schema-images removed" in dry.stdout
    assert f":service/prod/web tagKeys=io.dbroll.schema-image/{v4['digest']}" in dry.stdout, (
        dry.stdout
    )
    assert f"version 5 came from shop@{v4['digest'][:19]}" in dry.stdout
    second = run_rollback(dsn, "shop:v2")
    assert second.exit_code == 0, second.stderr
    st = dbroll("status", "--dsn", dsn, "--migrations", str(release["v2"]["dir"]), "--json")
    assert st.json["applied"] == ["1", "2", "3"]
    assert "notes" not in {t for (t,) in query(db, "SHOW TABLES")}
    assert service_image(aws).endswith(release["v2"]["digest"]) and service_labels(aws) == {}
    assert service_tags(aws) == {}


def test_a_worker_on_the_same_image_moves_with_the_service(release, aws, on_service, db, tmp_path):
    """--also-service: one database step, then the worker and the web service both run the
    target; a worker on another image is refused before any change; a worker already moved
    (by a run that stopped half-way) is left as it is."""
    from tests.conftest import history_rows

    dsn = db.to_dsn()
    assert dbroll("migrate", "--dsn", dsn, "--migrations", str(release["v3"]["dir"])).exit_code == 0
    on_service(release["v3"]["digest"])

    def worker(release_name: str) -> None:
        run_worker(aws, release[release_name]["digest"])

    def worker_image() -> str:
        return service_image(aws, "worker")

    worker("v2")  # not what web runs
    rows = history_rows(db)
    refused = run_rollback(dsn, "shop:v1", "--also-service", "worker")
    assert refused.exit_code == 2, refused.stderr
    assert "prod/worker (--also-service) runs worker=" in refused.stderr
    assert "nothing was changed" in refused.stderr
    assert history_rows(db) == rows and service_image(aws).endswith(release["v3"]["digest"])

    worker("v3")
    # the plan for the approver names it (and checks it as the move will)
    page = tmp_path / "plan.md"
    planned = dbroll(
        "plan", "--from-service", "prod/web", "--to", "shop:v1", "--bucket", "art",
        "--markdown", str(page), "--json", env={"DBROLL_ALSO_SERVICES": "worker"},
    )  # fmt: skip
    assert planned.exit_code == 0, planned.stderr
    assert planned.json["also_services"] == ["worker"]
    assert "also moves: worker (the same image, after the database step)" in page.read_text()
    alone = dbroll("plan", "--from", "shop:v3", "--to", "shop:v1", "--also-service", "worker")
    assert alone.exit_code == 2 and "--also-service needs --from-service" in alone.stderr
    dry = run_rollback(dsn, "shop:v1", "--also-service", "worker", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    calls = [line for line in dry.stdout.splitlines() if "ecs:RegisterTaskDefinition" in line]
    assert ["family=shop-worker" in c for c in calls] == [True, False], calls  # worker first

    # the worker already runs the target (as after a run that stopped once it had moved)
    worker("v1")
    r = run_rollback(dsn, "shop:v1", "--also-service", "worker", "--json")
    assert r.exit_code == 0, r.stderr
    assert "also_services" not in r.json and worker_image().endswith(release["v1"]["digest"])
    assert service_image(aws).endswith(release["v1"]["digest"])
    st = dbroll("status", "--dsn", dsn, "--migrations", str(release["v1"]["dir"]), "--json")
    assert st.json["applied"] == ["1", "2"]

    # forward, the worker named by the variable the pipelines' CodeBuild projects set
    f = dbroll(
        "deploy", "--cluster", "prod", "--service", "web", "--image", "shop:v3",
        "--executor", "local", "--dsn", dsn, "--bucket", "art", "--json",
        env={"DBROLL_ALSO_SERVICES": "worker"},
    )  # fmt: skip
    assert f.exit_code == 0, f.stderr
    assert list(f.json["also_services"]) == ["worker"]
    assert worker_image().endswith(release["v3"]["digest"])
    assert service_image(aws).endswith(release["v3"]["digest"])


def test_a_worker_left_behind_is_named_even_when_the_service_already_moved(
    release, aws, on_service, db
):
    dsn = db.to_dsn()
    assert dbroll("migrate", "--dsn", dsn, "--migrations", str(release["v1"]["dir"])).exit_code == 0
    on_service(release["v1"]["digest"])
    run_worker(aws, release["v3"]["digest"], container="w")
    r = run_rollback(dsn, "shop:v1", "--also-service", "worker")
    assert r.exit_code == 2 and "prod/worker (--also-service) runs w=" in r.stderr, r.stderr
    assert "nothing to do" not in r.stdout


def test_a_blue_green_service_moves_through_a_codedeploy_deployment(release, aws, db, blue_green):
    """ECS refuses UpdateService with a task definition for a CODE_DEPLOY service: the undo
    runs, then the move is a CodeDeploy deployment of the new revision behind the service's
    load balancer container, with no hooks (the database step is done). A deployment that
    fails is reported with what the database step did; the service keeps its image."""
    dsn = db.to_dsn()
    assert dbroll("migrate", "--dsn", dsn, "--migrations", str(release["v3"]["dir"])).exit_code == 0
    blue_green["deploy"](release["v3"]["digest"])

    dry = run_rollback(dsn, "shop:v1", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert (
        "codedeploy:CreateDeployment applicationName=shop deploymentGroupName=web-bg" in dry.stdout
    )
    assert "ecs:UpdateService" not in dry.stdout and blue_green["appspecs"] == []

    r = run_rollback(dsn, "shop:v1")
    assert r.exit_code == 0, r.stderr
    assert service_image(aws).endswith(release["v1"]["digest"])
    (spec,) = blue_green["appspecs"]
    assert "Hooks" not in spec
    props = spec["Resources"][0]["TargetService"]["Properties"]
    assert props["LoadBalancerInfo"] == {"ContainerName": "app", "ContainerPort": 80}
    ecs = aws.client("ecs")
    assert (
        props["TaskDefinition"]
        == ecs.describe_services(cluster="prod", services=["web"])["services"][0]["taskDefinition"]
    )
    st = dbroll("status", "--dsn", dsn, "--migrations", str(release["v1"]["dir"]), "--json")
    assert st.json["applied"] == ["1", "2"]

    blue_green["fail"] = True
    failed = dbroll(
        "deploy",
        *("--cluster", "prod", "--service", "web", "--image", "shop:v3"),
        *("--executor", "local", "--dsn", dsn, "--bucket", "art"),
        env={"DBROLL_CODEDEPLOY_GROUP": "shop/web-bg"},
    )
    assert failed.exit_code == 1, failed.stderr
    assert "CodeDeploy deployment" in failed.stderr and "Failed" in failed.stderr
    assert "The database step succeeded first" in failed.stderr
    assert service_image(aws).endswith(release["v1"]["digest"])


def test_a_blue_green_service_whose_deployment_group_cannot_be_found_is_left_untouched(
    release, aws, db, blue_green
):
    """Found by looking, none that lists the service is a clear error before the database
    step; a --codedeploy-group that deploys another service is one too (CodeDeploy would
    put the revision there)."""
    from tests.conftest import history_rows

    dsn = db.to_dsn()
    assert dbroll("migrate", "--dsn", dsn, "--migrations", str(release["v3"]["dir"])).exit_code == 0
    blue_green["deploy"](release["v3"]["digest"], group_lists="api")
    rows = history_rows(db)
    r = run_rollback(dsn, "shop:v1")
    assert r.exit_code == 2, r.stderr
    assert "no deployment group of this account and region lists it" in r.stderr
    assert "--codedeploy-group" in r.stderr
    assert history_rows(db) == rows and service_image(aws).endswith(release["v3"]["digest"])
    named = run_rollback(dsn, "shop:v1", "--codedeploy-group", "shop/web-bg")
    assert named.exit_code == 2, named.stderr
    assert "shop/web-bg (--codedeploy-group) deploys prod/api, not prod/web" in named.stderr
    assert history_rows(db) == rows and service_image(aws).endswith(release["v3"]["digest"])


def test_a_blue_green_move_waits_for_no_one_else_s_deployment(release, aws, db, blue_green):
    """CodeDeploy takes one deployment per group at a time: one under way is found before
    the database step (exit 4, nothing changed), not by a refused move after it."""
    from tests.conftest import history_rows

    dsn = db.to_dsn()
    assert dbroll("migrate", "--dsn", dsn, "--migrations", str(release["v3"]["dir"])).exit_code == 0
    blue_green["deploy"](release["v3"]["digest"])
    blue_green["hold"] = True
    content = '{"version": 0.0, "Resources": [{"TargetService": {"Properties": {}}}]}'
    under_way = aws.client("codedeploy").create_deployment(
        applicationName="shop",
        deploymentGroupName="web-bg",
        revision={"revisionType": "AppSpecContent", "appSpecContent": {"content": content}},
    )["deploymentId"]
    rows = history_rows(db)
    r = run_rollback(dsn, "shop:v1")
    assert r.exit_code == 4, r.stderr
    assert f"has a deployment under way ({under_way})" in r.stderr
    assert f"aws deploy stop-deployment --deployment-id {under_way}" in r.stderr
    assert history_rows(db) == rows and service_image(aws).endswith(release["v3"]["digest"])
