"""rollback and deploy through the real ECS executor: run_task in the service's cluster, the
task's command run for real (tests/conftest.py `ecs_runs_locally`), its CloudWatch lines
streamed, then the service update: the whole production code path, on moto."""

from __future__ import annotations

import contextlib

import pytest

from pipeline.db.connect import connect
from tests.conftest import args, dbroll, schema_objects
from tests.e2e.conftest import service_image, service_labels, service_tags

pytestmark = pytest.mark.e2e


def test_rollback_and_deploy_through_one_off_tasks(
    release, aws, db, mariadb, shop_service, ecs_runs_locally
):
    dsn = db.to_dsn()
    assert dbroll("migrate", "--dsn", dsn, "--migrations", str(release["v3"]["dir"])).exit_code == 0
    shop_service(release["v3"]["digest"])
    common = ("--cluster", "prod", "--service", "web", "--bucket", "art")
    r = dbroll("rollback", *common, "--to", "shop:v1", "--yes")
    assert r.exit_code == 0, r.stderr
    (task,) = ecs_runs_locally
    assert task["command"][:2] == ["dbroll", "apply-bundle"] and task["exit"] == 0
    assert (
        task["env"]["DBROLL_TASK"] == "1" and task["env"]["DBROLL_IMAGE"] == release["v3"]["digest"]
    )
    assert "database step: arn:aws:ecs:eu-west-1:123456789012:task/prod/" in r.stdout
    assert "  | " in r.stderr and "undone" in r.stderr  # the task's lines, streamed
    assert service_image(aws).endswith(release["v1"]["digest"])
    reference = mariadb.create_database()
    try:
        assert (
            dbroll(
                "migrate", "--dsn", reference.to_dsn(), "--migrations", str(release["v1"]["dir"])
            )
        ).exit_code == 0
        assert schema_objects(db) == schema_objects(reference)
    finally:
        mariadb.drop_database(reference)
    # forward again: the pending migrations of v3 run in a one-off task of v1's definition
    f = dbroll("deploy", *common, "--image", "shop:v3")
    assert f.exit_code == 0, f.stderr
    assert ecs_runs_locally[-1]["command"][:4] == [
        "dbroll",
        "migrate",
        "--manifest",
        f"shop@{release['v3']['digest']}",
    ]
    st = dbroll("status", "--dsn", dsn, "--migrations", str(release["v3"]["dir"]), "--json")
    assert st.json["applied"] == ["1", "2", "3", "4"]
    assert service_image(aws).endswith(release["v3"]["digest"])


def test_a_failing_task_is_reported_with_its_log_and_the_service_stays(
    release, aws, db, shop_service, ecs_runs_locally
):
    dsn = db.to_dsn()
    assert dbroll("migrate", "--dsn", dsn, "--migrations", str(release["v3"]["dir"])).exit_code == 0
    shop_service(release["v3"]["digest"])
    from tests.conftest import query

    query(
        db, "CREATE TABLE blocker (code VARCHAR(20), FOREIGN KEY (code) REFERENCES coupons (code))"
    )
    r = dbroll(
        "rollback",
        "--cluster",
        "prod",
        "--service",
        "web",
        "--bucket",
        "art",
        "--to",
        "shop:v1",
        "--yes",
    )
    assert r.exit_code == 1
    assert "the database step failed (task arn:aws:ecs:" in r.stderr and "exit 1" in r.stderr
    assert "coupons" in r.stderr  # the task's own error, from its CloudWatch lines
    assert service_image(aws).endswith(release["v3"]["digest"])


def test_a_migration_a_stopped_task_left_half_done_blocks_the_deploy_until_asked_to_resume(
    release, aws, db, shop_service, ecs_runs_locally
):
    import signal

    import pymysql

    from tests.conftest import history_rows, start_and_signal

    assert dbroll("migrate", *args(db, release["v1"]["dir"])).exit_code == 0
    shop_service(release["v1"]["digest"])
    # an earlier runner of v3's migrations was stopped (SIGTERM, as ECS stops a task) while
    # its ALTER waited for a reader's metadata lock on `orders`
    reader = connect(db)
    try:
        reader.cursor().execute("BEGIN")
        reader.cursor().execute("SELECT * FROM orders")
        start_and_signal(db, release["v3"]["dir"], signal.SIGTERM, "ALTER TABLE orders%")
    finally:
        with contextlib.suppress(pymysql.MySQLError):
            reader.rollback()
        reader.close()
    stopped = history_rows(db)
    assert stopped[-1][:3] == ("3", "migrate", "running"), stopped
    common = ("--cluster", "prod", "--service", "web", "--bucket", "art", "--image", "shop:v3")

    r = dbroll("deploy", *common)
    assert r.exit_code == 3, r.stderr
    assert "run the same command with --resume-interrupted" in r.stderr
    assert "DBROLL_RESUME_INTERRUPTED" not in ecs_runs_locally[-1]["env"]
    assert history_rows(db) == stopped and service_image(aws).endswith(release["v1"]["digest"])

    dry = dbroll("deploy", *common, "--resume-interrupted", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert "environment+=DBROLL_RESUME_INTERRUPTED=1" in dry.stdout
    # before the move, the service is told whose migrations the database has
    assert f"tags=io.dbroll.schema-image/{release['v3']['digest']}=app (the database" in dry.stdout
    assert len(ecs_runs_locally) == 1 and history_rows(db) == stopped

    r = dbroll("deploy", *common, "--resume-interrupted")
    assert r.exit_code == 0, r.stderr
    assert ecs_runs_locally[-1]["env"]["DBROLL_RESUME_INTERRUPTED"] == "1"
    st = dbroll("status", *args(db, release["v3"]["dir"]), "--json")
    assert st.json["applied"] == ["1", "2", "3", "4"] and not st.json.get("blocked")
    assert service_image(aws).endswith(release["v3"]["digest"])
    assert service_tags(aws) == {}  # the service runs it: the record went with the move


def test_a_second_rollback_after_a_code_only_one_undoes_what_the_first_kept(
    release, aws, db, mariadb, tmp_path, shop_service, ecs_runs_locally
):
    """v4 adds an additive table; rolling v4 back to v3 is code-only and keeps it. v3 turns
    out broken too: rolling back to v2 must undo v4's table (an undo script only v4's
    manifest has) and v3's rename, newest first; the planner reads no database here."""
    from tests.e2e.conftest import V4, publish_release

    v4 = publish_release(tmp_path, aws.client("ecr"), "v4", V4)
    assert dbroll("migrate", *args(db, v4["dir"])).exit_code == 0
    shop_service(v4["digest"])
    common = ("--cluster", "prod", "--service", "web", "--bucket", "art", "--yes")

    first = dbroll("rollback", *common, "--to", "shop:v3")
    assert first.exit_code == 0, first.stderr
    assert "code-only" in first.stdout
    assert service_image(aws).endswith(release["v3"]["digest"])
    assert service_labels(aws)["io.dbroll.schema-images"] == v4["digest"]

    second = dbroll("rollback", *common, "--to", "shop:v2")
    assert second.exit_code == 0, second.stderr
    assert service_image(aws).endswith(release["v2"]["digest"])
    assert "io.dbroll.schema-images" not in service_labels(aws)
    undone = [line for line in second.stderr.splitlines() if " undone " in line]
    assert [line.split()[1] for line in undone] == ["5", "4"], second.stderr
    st = dbroll("status", *args(db, release["v2"]["dir"]), "--json")
    assert st.json["applied"] == ["1", "2", "3"]
    reference = mariadb.create_database()
    try:
        assert dbroll("migrate", *args(reference, release["v2"]["dir"])).exit_code == 0
        assert schema_objects(db) == schema_objects(reference)
    finally:
        mariadb.drop_database(reference)


def test_the_record_of_kept_migrations_outlives_a_revision_registered_without_dbroll(
    release, aws, db, tmp_path, shop_service, ecs_runs_locally
):
    """v4 -> v3 code-only keeps v4's version 5; then CodeDeploy blue/green ships a v3 code
    hotfix from taskdef.json, a revision without dbroll's label. The service's tags still
    name v4, so rolling back to v2 undoes 5 (v4's script) and 4 instead of stopping at a
    stale plan; afterwards the tags are gone."""
    from tests.e2e.conftest import V4, publish_release

    v4 = publish_release(tmp_path, aws.client("ecr"), "v4", V4)
    assert dbroll("migrate", *args(db, v4["dir"])).exit_code == 0
    shop_service(v4["digest"])
    common = ("--cluster", "prod", "--service", "web", "--bucket", "art", "--yes")
    assert dbroll("rollback", *common, "--to", "shop:v3").exit_code == 0
    tag = "io.dbroll.schema-image/" + v4["digest"]
    assert service_tags(aws) == {tag: "app"}

    shop_service(release["v3"]["digest"])  # the blue/green deployment's own revision
    assert service_labels(aws) == {} and service_tags(aws) == {tag: "app"}

    s3, key = aws.client("s3"), f"dbroll/manifests/shop/{v4['digest']}/manifest.json"
    saved = s3.get_object(Bucket="art", Key=key)["Body"].read()
    s3.delete_object(Bucket="art", Key=key)
    lost = dbroll("rollback", *common, "--to", "shop:v2")
    assert lost.exit_code == 2, lost.stderr
    assert "ECS service prod/web: its tag io.dbroll.schema-image/" in lost.stderr
    assert v4["digest"] in lost.stderr and "aws ecs untag-resource" in lost.stderr
    assert service_image(aws).endswith(release["v3"]["digest"])
    s3.put_object(Bucket="art", Key=key, Body=saved)

    r = dbroll("rollback", *common, "--to", "shop:v2")
    assert r.exit_code == 0, r.stderr
    undone = [line.split()[1] for line in r.stderr.splitlines() if " undone " in line]
    assert undone == ["5", "4"], r.stderr
    st = dbroll("status", *args(db, release["v2"]["dir"]), "--json")
    assert st.json["applied"] == ["1", "2", "3"]
    assert service_image(aws).endswith(release["v2"]["digest"]) and service_tags(aws) == {}


def test_a_hotfix_numbered_below_a_kept_version_deploys_out_of_order_only_when_asked(
    release, aws, db, tmp_path, shop_service, ecs_runs_locally
):
    """After v4 -> v3 code-only (v4's version 5 kept), a hotfix v3.1 of v3 adds version 4.1:
    older than 5, so the deploy stops at the plan until --out-of-order; then it applies
    4.1, the label keeps naming v4, and rolling the hotfix back undoes 5, 4.1 and 4."""
    from tests.conftest import history_rows
    from tests.e2e.conftest import V3, V4, publish_release

    ecr = aws.client("ecr")
    v4 = publish_release(tmp_path, ecr, "v4", V4)
    fix = publish_release(
        tmp_path,
        ecr,
        "v3.1",
        {
            **V3,
            "V4.1__orders_index.sql": "CREATE INDEX orders_customer ON orders (customer_id);",
            "U4.1__orders_index.sql": "DROP INDEX orders_customer ON orders;",
        },
    )
    assert dbroll("migrate", *args(db, v4["dir"])).exit_code == 0
    shop_service(v4["digest"])
    common = ("--cluster", "prod", "--service", "web", "--bucket", "art")
    assert dbroll("rollback", *common, "--to", "shop:v3", "--yes").exit_code == 0
    tasks, rows = len(ecs_runs_locally), history_rows(db)

    blocked = dbroll("deploy", *common, "--image", "shop:v3.1")
    assert blocked.exit_code == 3, blocked.stderr
    assert "[out-of-order]" in blocked.stderr and "--out-of-order" in blocked.stderr
    assert len(ecs_runs_locally) == tasks and history_rows(db) == rows  # no task ran
    assert service_image(aws).endswith(release["v3"]["digest"])

    r = dbroll("deploy", *common, "--image", "shop:v3.1", "--out-of-order")
    assert r.exit_code == 0, r.stderr
    assert ecs_runs_locally[-1]["env"]["DBROLL_OUT_OF_ORDER"] == "1"
    st = dbroll("status", *args(db, fix["dir"]), "--json")
    assert st.json["applied"] == ["1", "2", "3", "4", "4.1", "5"]
    assert service_image(aws).endswith(fix["digest"])
    assert service_labels(aws) == {"io.dbroll.schema-images": v4["digest"]}

    back = dbroll("rollback", *common, "--to", "shop:v2", "--yes")
    assert back.exit_code == 0, back.stderr
    undone = [line.split()[1] for line in back.stderr.splitlines() if " undone " in line]
    assert undone == ["5", "4.1", "4"], back.stderr
    st = dbroll("status", *args(db, release["v2"]["dir"]), "--json")
    assert st.json["applied"] == ["1", "2", "3"] and service_labels(aws) == {}


def test_after_codedeploy_puts_traffic_back_a_rollback_to_what_runs_undoes_the_hooks_migrations(
    release, aws, db, tmp_path, shop_service, ecs_runs_locally
):
    """A blue/green deployment of v4 (here with a breaking change): the hook applied v4's
    migration in a one-off task and recorded it on the service, then CodeDeploy rolled the
    deployment back, so v3 serves again on v4's schema. `dbroll rollback --to shop:v3` (what
    runs) undoes it with v4's script, in a one-off task, and leaves the service on its
    revision; with nothing beyond any more, the same command has nothing to do."""
    from pipeline.aws.ecs import Ecs, OneOffTasks, record_applied
    from pipeline.executor import EcsTaskExecutor
    from tests.e2e.conftest import V4_BREAKING, publish_release

    v4 = publish_release(
        tmp_path,
        aws.client("ecr"),
        "v4",
        V4_BREAKING,
    )
    assert dbroll("migrate", *args(db, release["v3"]["dir"])).exit_code == 0
    shop_service(release["v3"]["digest"])
    ecs = aws.client("ecs")
    state = Ecs(ecs).service_state("prod", "web")
    # what the hook's database step does for the deployment of v4
    hook = EcsTaskExecutor(OneOffTasks(ecs, aws.client("logs")), state, container="app", delay=0.05)
    ran = hook.run(
        ["dbroll", "migrate", "--manifest", f"shop@{v4['digest']}", "--bucket", "art"], {}
    )
    assert ran.ok, ran.log_lines
    record_applied(ecs, state, ["app"], v4["digest"])
    assert service_tags(aws) == {f"io.dbroll.schema-image/{v4['digest']}": "app"}
    revision = state.task_definition

    common = ("--cluster", "prod", "--service", "web", "--bucket", "art", "--yes")
    r = dbroll("rollback", *common, "--to", "shop:v3")
    assert r.exit_code == 0, r.stderr
    assert ecs_runs_locally[-1]["command"][1] == "apply-bundle"
    undone = [line.split()[1] for line in r.stderr.splitlines() if " undone " in line]
    assert undone == ["5"], r.stderr
    st = dbroll("status", *args(db, release["v3"]["dir"]), "--json")
    assert st.json["applied"] == ["1", "2", "3", "4"] and not st.json.get("future")
    assert Ecs(ecs).service_state("prod", "web").task_definition == revision
    assert service_tags(aws) == {}
    again = dbroll("rollback", *common, "--to", "shop:v3")
    assert again.exit_code == 0 and "nothing to do" in again.stdout
