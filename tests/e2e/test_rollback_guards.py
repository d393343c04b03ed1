"""Rollback and deploy guards: dry runs that cannot write, a failed ECS deployment after the
database step, a held runner lock, approved bundles (and stale ones), stage rollbacks."""

from __future__ import annotations

import json

import pymysql
import pytest

from tests.conftest import dbroll, query
from tests.e2e.conftest import db_secret, run_rollback, run_worker, service_image

pytestmark = pytest.mark.e2e


def _revisions(aws) -> list[str]:
    return aws.client("ecs").list_task_definitions(familyPrefix="shop")["taskDefinitionArns"]


def _keys(aws, prefix: str) -> list[str]:
    out = aws.client("s3").list_objects_v2(Bucket="art", Prefix=prefix)
    return [o["Key"] for o in out.get("Contents", [])]


def _applied(dsn: str, release) -> list[str]:
    st = dbroll("status", "--dsn", dsn, "--migrations", str(release["v3"]["dir"]), "--json")
    return st.json["applied"]


@pytest.mark.parametrize("executor", ["local", "ecs"])
def test_dry_run_lists_every_call_and_writes_nothing(release, aws, on_service, db, executor):
    dsn = db.to_dsn()
    assert dbroll("migrate", "--dsn", dsn, "--migrations", str(release["v3"]["dir"])).exit_code == 0
    on_service(release["v3"]["digest"])
    revisions = _revisions(aws)
    r = dbroll(
        "rollback",
        *("--cluster", "prod", "--service", "web", "--to", "shop:v1", "--bucket", "art"),
        *("--executor", executor, "--dsn", dsn, "--dry-run"),
    )
    assert r.exit_code == 0, r.stderr
    made, _, would = r.stdout.partition("AWS calls it would make, in order:")
    assert "ecs:DescribeServices" in made and "s3:GetObject" in made
    steps = [line.split(". ", 1)[1] for line in would.splitlines() if ". " in line]
    kinds = [s.split()[0] for s in steps]
    expected_db = ["ecs:RunTask", "ecs:DescribeTasks", "logs:GetLogEvents"]
    assert kinds == [
        "s3:PutObject",
        *(expected_db if executor == "ecs" else ["(no"]),
        "ecs:DescribeTaskDefinition",
        "ecs:RegisterTaskDefinition",
        "ecs:UpdateService",
        "ecs:DescribeServices",
        "s3:PutObject",
    ]
    assert "s3://art/dbroll/bundles/" in steps[0] and release["v1"]["digest"] in r.stdout
    # nothing changed: no bundle, no audit record, no new task definition, same image
    assert _keys(aws, "dbroll/bundles/") == [] and _keys(aws, "dbroll/audit/") == []
    assert _revisions(aws) == revisions
    assert service_image(aws).endswith(release["v3"]["digest"])
    assert _applied(dsn, release) == ["1", "2", "3", "4"]


@pytest.fixture
def circuit_breaker(monkeypatch):
    """ECS's deployment circuit breaker trips on every service update while `on` is set
    (only on service `only`'s, when set)."""
    from moto.ecs.models import EC2ContainerServiceBackend

    original = EC2ContainerServiceBackend.update_service
    state = {"on": True, "only": None}

    def update_service(self, props):
        if not state["on"] or state["only"] not in (None, props["service"]):
            return original(self, props)
        old = self._get_service(props.get("cluster", "default"), props["service"]).task_definition
        svc = original(self, props)
        new = svc.task_definition
        svc.task_definition = old  # what ECS does when the deployment circuit breaker trips
        svc.deployments = [
            {
                "id": "ecs-svc/failed",
                "status": "ACTIVE",
                "taskDefinition": new,
                "rolloutState": "FAILED",
                "rolloutStateReason": "ECS deployment circuit breaker: tasks failed to start.",
                "desiredCount": 1,
                "runningCount": 0,
            }
        ]
        return svc

    monkeypatch.setattr(EC2ContainerServiceBackend, "update_service", update_service)
    return state


def test_a_failed_service_deployment_says_how_to_put_the_schema_forward(
    release, aws, on_service, db, circuit_breaker
):
    """The circuit breaker rolls the service back after the undo ran: the error says what
    state the database is in and gives the command that puts it forward again."""
    dsn = db.to_dsn()
    assert dbroll("migrate", "--dsn", dsn, "--migrations", str(release["v3"]["dir"])).exit_code == 0
    on_service(release["v3"]["digest"])
    r = run_rollback(dsn, "shop:v1")
    assert r.exit_code == 1
    assert "circuit breaker" in r.stderr and "The database step succeeded first" in r.stderr
    assert _applied(dsn, release) == ["1", "2"]  # the undo ran
    assert service_image(aws).endswith(release["v3"]["digest"])  # ECS put v3 back
    (audit,) = _keys(aws, "dbroll/audit/")
    record = json.loads(aws.client("s3").get_object(Bucket="art", Key=audit)["Body"].read())
    assert record["outcome"].startswith("failed:") and record["task_exit"] == 0
    # the command in the message brings the schema forward again
    command = r.stderr.split("`dbroll ", 1)[1].split("`", 1)[0].split()
    assert command[:2] == ["migrate", "--manifest"] and release["v3"]["digest"] in command[2]
    fwd = dbroll(*command, "--dsn", dsn)
    assert fwd.exit_code == 0, fwd.stderr
    assert _applied(dsn, release) == ["1", "2", "3", "4"]


def test_rollback_meeting_a_held_runner_lock_exits_4_and_changes_nothing(
    release, aws, on_service, db
):
    dsn = db.to_dsn()
    assert dbroll("migrate", "--dsn", dsn, "--migrations", str(release["v3"]["dir"])).exit_code == 0
    on_service(release["v3"]["digest"])
    holder = pymysql.connect(
        host=db.host, port=db.port, user=db.user, password=db.password, database=db.database
    )
    try:
        holder.cursor().execute("SELECT GET_LOCK(%s, 0)", (f"dbroll:{db.database}",))
        r = run_rollback(dsn, "shop:v1", env_lock=True)
    finally:
        holder.close()
    assert r.exit_code == 4, r.stderr
    assert "service was not touched" in r.stderr
    assert _applied(dsn, release) == ["1", "2", "3", "4"]
    assert service_image(aws).endswith(release["v3"]["digest"])


def _approved_bundle(aws, tmp_path, dsn, *frm: str) -> str:
    out = tmp_path / "approved.tgz"
    p = dbroll("plan", *frm, "--to", "shop:v1", "--dsn", dsn, "--bucket", "art", "--out", str(out))
    assert p.exit_code == 0, p.stderr
    aws.client("s3").put_object(Bucket="art", Key="approved/b.tgz", Body=out.read_bytes())
    return "s3://art/approved/b.tgz"


def test_an_approved_bundle_runs_without_planning_again(release, aws, on_service, db, tmp_path):
    dsn = db.to_dsn()
    assert dbroll("migrate", "--dsn", dsn, "--migrations", str(release["v3"]["dir"])).exit_code == 0
    on_service(release["v3"]["digest"])
    uri = _approved_bundle(aws, tmp_path, dsn, "--from-service", "prod/web")
    r = dbroll(
        "rollback",
        *("--cluster", "prod", "--service", "web", "--bundle", uri, "--bucket", "art"),
        *("--executor", "local", "--dsn", dsn, "--yes"),
    )
    assert r.exit_code == 0, r.stderr
    assert f"bundle: {uri}" in r.stdout
    assert _applied(dsn, release) == ["1", "2"]
    assert service_image(aws).endswith(release["v1"]["digest"])


def test_a_stale_bundle_is_refused_before_anything_runs(release, aws, on_service, db, tmp_path):
    dsn = db.to_dsn()
    assert dbroll("migrate", "--dsn", dsn, "--migrations", str(release["v2"]["dir"])).exit_code == 0
    uri = _approved_bundle(aws, tmp_path, dsn, "--from", "shop:v2")
    # meanwhile v3 was deployed
    assert dbroll("migrate", "--dsn", dsn, "--migrations", str(release["v3"]["dir"])).exit_code == 0
    on_service(release["v3"]["digest"])
    r = dbroll(
        "rollback",
        *("--cluster", "prod", "--service", "web", "--bundle", uri, "--bucket", "art"),
        *("--executor", "local", "--dsn", dsn, "--yes"),
    )
    assert r.exit_code == 3 and "stale" in r.stderr and "shop:v2" in r.stderr
    assert _applied(dsn, release) == ["1", "2", "3", "4"]
    assert service_image(aws).endswith(release["v3"]["digest"])
    assert _keys(aws, "dbroll/audit/") == []


def test_to_and_bundle_are_exclusive(aws):
    r = dbroll("rollback", "--cluster", "c", "--service", "s", "--bucket", "art")
    assert r.exit_code == 2 and "--to REF and --bundle" in r.stderr


def test_an_undo_that_destroys_data_needs_a_backup_or_an_explicit_yes(release, aws, on_service, db):
    """v3 -> v1 undoes v3 (drops coupons and orders.coupon): with rows in them, the rollback
    is refused before anything runs; with --backup the data is kept in S3 and comes back
    after the forward migration re-creates the table and the column."""
    dsn = db.to_dsn()
    assert dbroll("migrate", "--dsn", dsn, "--migrations", str(release["v3"]["dir"])).exit_code == 0
    on_service(release["v3"]["digest"])
    query(db, "INSERT INTO customers (full_name) VALUES ('Ada')")
    query(db, "INSERT INTO coupons VALUES ('TEN'), ('TWENTY')")
    query(db, "INSERT INTO orders (customer_id, total, coupon) VALUES (1, 5, 'TEN'), (1, 7, NULL)")
    refused = run_rollback(dsn, "shop:v1")
    assert refused.exit_code == 3, refused.stderr
    assert "would destroy data" in refused.stderr and "coupons" in refused.stderr
    assert "orders.coupon" in refused.stderr and "--backup" in refused.stderr
    assert _applied(dsn, release) == ["1", "2", "3", "4"]  # nothing ran
    assert service_image(aws).endswith(release["v3"]["digest"])
    r = run_rollback(dsn, "shop:v1", "--backup", "s3://art/dbroll", "--json")
    assert r.exit_code == 0, r.stderr
    assert r.json["backup"]["rows"] == 4  # 2 coupons + both orders rows (key + coupon)
    assert {d["what"]: d["rows"] for d in r.json["data_at_risk"]} == {
        "orders.coupon": 1,
        "coupons": 2,
    }
    assert _applied(dsn, release) == ["1", "2"]
    listed = dbroll("backup", "list", "--bucket", "art", "--json")
    assert [b["uri"] for b in listed.json["backups"]] == [r.json["backup"]["uri"]]
    # forward again, then put the data back
    assert dbroll("migrate", "--dsn", dsn, "--migrations", str(release["v3"]["dir"])).exit_code == 0
    back = dbroll("backup", "restore", r.json["backup"]["uri"], "--dsn", dsn)
    assert back.exit_code == 0, back.stderr
    assert query(db, "SELECT code FROM coupons ORDER BY code") == [("TEN",), ("TWENTY",)]
    assert query(db, "SELECT id, coupon FROM orders ORDER BY id") == [(1, "TEN"), (2, None)]


def test_accept_data_loss_runs_the_undo_without_a_backup(release, aws, on_service, db):
    dsn = db.to_dsn()
    assert dbroll("migrate", "--dsn", dsn, "--migrations", str(release["v3"]["dir"])).exit_code == 0
    on_service(release["v3"]["digest"])
    query(db, "INSERT INTO coupons VALUES ('TEN')")
    r = run_rollback(dsn, "shop:v1", "--accept-data-loss", "--json")
    assert r.exit_code == 0, r.stderr
    assert "backup" not in r.json and r.json["data_at_risk"]
    assert _applied(dsn, release) == ["1", "2"]
    assert _keys(aws, "dbroll/backups/") == []


def test_the_plan_shows_the_data_at_risk(release, aws, on_service, db, tmp_path):
    dsn = db.to_dsn()
    assert dbroll("migrate", "--dsn", dsn, "--migrations", str(release["v3"]["dir"])).exit_code == 0
    on_service(release["v3"]["digest"])
    query(db, "INSERT INTO coupons VALUES ('TEN'), ('FIVE')")
    args = ("plan", "--from-service", "prod/web", "--to", "shop:v1", "--bucket", "art")
    measured = dbroll(*args, "--dsn", dsn, "--json")
    assert {d["what"]: d["rows"] for d in measured.json["data_at_risk"]} == {
        "orders.coupon": 0,
        "coupons": 2,
    }
    text = dbroll(*args, "--dsn", dsn, "--markdown", str(tmp_path / "p.md"))
    assert "coupons (dropped, U3__coupons.sql:2): 2 row(s)" in text.stdout
    assert "**Data at risk**" in (tmp_path / "p.md").read_text()
    blind = dbroll(*args)  # no database: the targets, not measured
    assert "coupons (dropped, U3__coupons.sql:2): not measured" in blind.stdout
    # from a secret: the same figures, and the secret read once (history and measure)
    from tests.e2e.test_iam_coverage import recording_aws_calls

    secret = db_secret(aws, db)
    calls: list = []
    with recording_aws_calls(calls):
        via_secret = dbroll(*args, "--dsn-secret", secret, "--json")
    assert via_secret.json["data_at_risk"] == measured.json["data_at_risk"]
    assert [op for _, op, _ in calls].count("GetSecretValue") == 1, calls


def test_after_an_undo_the_schema_is_compared_with_the_target_snapshot(
    release, aws, on_service, db
):
    """The one-off migrate of each deploy stores the schema it produced; an undo back to that
    image is compared with it: a difference is a warning, or exit 1 with --strict."""
    dsn = db.to_dsn()
    mig = dbroll("migrate", "--manifest", "shop:v1", "--bucket", "art", "--dsn", dsn)
    assert mig.exit_code == 0 and "schema snapshot stored" in mig.stdout
    on_service(release["v1"]["digest"])
    deploy = ("deploy", "--cluster", "prod", "--service", "web", "--bucket", "art")
    assert dbroll(*deploy, "--image", "shop:v3", "--executor", "local", "--dsn", dsn).exit_code == 0
    clean = run_rollback(dsn, "shop:v1", "--json")
    assert clean.exit_code == 0, clean.stderr
    assert clean.json["schema_matches"].startswith("shop:v1") and clean.json["schema_drift"] == []
    # again, with a change no migration knows about
    assert dbroll(*deploy, "--image", "shop:v3", "--executor", "local", "--dsn", dsn).exit_code == 0
    query(db, "CREATE INDEX ix_by_hand ON orders (total)")
    strict = run_rollback(dsn, "shop:v1", "--strict")
    assert strict.exit_code == 1
    assert "differs from shop:v1" in strict.stderr and "ix_by_hand" in strict.stderr
    assert service_image(aws).endswith(release["v3"]["digest"])  # the service was not moved


def test_after_a_failed_service_deployment_the_same_command_finishes_the_move(
    release, aws, on_service, db, circuit_breaker
):
    dsn = db.to_dsn()
    assert dbroll("migrate", "--dsn", dsn, "--migrations", str(release["v3"]["dir"])).exit_code == 0
    on_service(release["v3"]["digest"])
    assert run_rollback(dsn, "shop:v1").exit_code == 1
    circuit_breaker["on"] = False  # the cause is fixed
    again = run_rollback(dsn, "shop:v1", "--json")
    assert again.exit_code == 0, again.stderr
    # the live history already is v1's: nothing to revert, only the service moves
    assert again.json["plan"]["direction"] == "none" and again.json["plan"]["steps"] == []
    assert _applied(dsn, release) == ["1", "2"]
    assert service_image(aws).endswith(release["v1"]["digest"])


def test_a_worker_that_fails_to_move_stops_the_move_before_the_service(
    release, aws, on_service, db, circuit_breaker
):
    """--also-service moves the worker first: when its deployment fails, the web service has
    not moved; the error names both, and the same command, once fixed, finishes the move."""
    dsn = db.to_dsn()
    assert dbroll("migrate", "--dsn", dsn, "--migrations", str(release["v3"]["dir"])).exit_code == 0
    on_service(release["v3"]["digest"])
    run_worker(aws, release["v3"]["digest"])
    circuit_breaker["only"] = "worker"
    r = run_rollback(dsn, "shop:v1", "--also-service", "worker")
    assert r.exit_code == 1, r.stderr
    assert "circuit breaker" in r.stderr and "The database step succeeded first" in r.stderr
    assert "moved to the target: none yet; not moved: worker, then web" in r.stderr
    assert _applied(dsn, release) == ["1", "2"]  # the undo ran
    assert service_image(aws).endswith(release["v3"]["digest"])  # web did not move
    circuit_breaker["on"] = False
    again = run_rollback(dsn, "shop:v1", "--also-service", "worker")
    assert again.exit_code == 0, again.stderr
    assert _applied(dsn, release) == ["1", "2"]
    assert service_image(aws).endswith(release["v1"]["digest"])
    assert service_image(aws, "worker").endswith(release["v1"]["digest"])


def test_a_deploy_the_service_could_not_take_is_undone_by_the_command_its_error_gives(
    release, aws, on_service, db, tmp_path, circuit_breaker
):
    """The forward deploy applied v4's breaking migration, then the circuit breaker kept
    the service on v3. The service was told before the move that v4's migrations are
    applied, so the rollback the error names (to v3, what still runs) undoes them with v4's
    script, and the record is gone afterwards."""
    from tests.e2e.conftest import V4_BREAKING, publish_release, service_tags

    v4 = publish_release(
        tmp_path,
        aws.client("ecr"),
        "v4",
        V4_BREAKING,
    )
    dsn = db.to_dsn()
    assert dbroll("migrate", "--dsn", dsn, "--migrations", str(release["v3"]["dir"])).exit_code == 0
    on_service(release["v3"]["digest"])
    move = ("--cluster", "prod", "--service", "web", "--executor", "local", "--dsn", dsn)
    r = dbroll("deploy", *move, "--bucket", "art", "--image", "shop:v4")
    assert r.exit_code == 1 and "circuit breaker" in r.stderr, r.stderr
    assert service_image(aws).endswith(release["v3"]["digest"])
    assert service_tags(aws) == {f"io.dbroll.schema-image/{v4['digest']}": "app"}
    given = f"--to shop@{release['v3']['digest']}"
    assert given in r.stderr
    circuit_breaker["on"] = False
    back = dbroll("rollback", *move, "--bucket", "art", "--yes", *given.split())
    assert back.exit_code == 0, back.stderr
    undone = [line.split()[1] for line in back.stderr.splitlines() if " undone " in line]
    assert undone == ["5"], back.stderr
    assert _applied(dsn, release) == ["1", "2", "3", "4"] and service_tags(aws) == {}
    assert service_image(aws).endswith(release["v3"]["digest"])
