"""One-off tasks: the real ECS executor path against moto, with tasks that really run.

moto never runs containers, so `ecs_runs_locally` patches moto's run_task: the task's
command override runs here (against the test MariaDB), and the task gets its real exit
code, stop reason and CloudWatch log lines. Everything else is the real boto3 path.
"""

from __future__ import annotations

import pytest

from pipeline.aws.ecs import OneOffTasks
from pipeline.errors import AwsError
from pipeline.executor import EcsTaskExecutor, LocalTaskExecutor
from tests.conftest import query, write_files


def test_ecs_executor_runs_in_the_service_network_and_reports(
    ecs_runs_locally, service, aws, db, tmp_path
):
    mdir = write_files(tmp_path / "m", {"V1__a.sql": "CREATE TABLE a (id INT);"})
    tasks = OneOffTasks(aws.client("ecs"), aws.client("logs"))
    executor = EcsTaskExecutor(tasks, service, container="app", timeout=30, delay=0.05)
    out = executor.run(
        ["dbroll", "migrate", "--migrations", str(mdir)],
        {"DBROLL_DSN": db.to_dsn(), "DBROLL_RUN_ID": "run-42"},
    )
    assert out.ok and out.exit_code == 0 and out.task_arn.startswith("arn:aws:ecs:")
    assert out.stopped_reason == "Essential container in task exited"
    assert any('"event": "migrate"' in line for line in out.log_lines)
    assert query(db, "SELECT run_id FROM dbroll_history") == [("run-42",)]
    task = aws.client("ecs").describe_tasks(cluster="prod", tasks=[out.task_arn])["tasks"][0]
    assert task["launchType"] == "FARGATE"
    eni = task["attachments"][0]["details"]
    assert any(
        d["name"] == "subnetId"
        and d["value"] in service.raw["networkConfiguration"]["awsvpcConfiguration"]["subnets"]
        for d in eni
    )


def test_ecs_executor_reports_a_failing_task(ecs_runs_locally, service, aws, db, tmp_path):
    mdir = write_files(tmp_path / "m", {"V1__a.sql": "CREATE TABLE a (id INT);\nBROKEN;"})
    executor = EcsTaskExecutor(
        OneOffTasks(aws.client("ecs"), aws.client("logs")),
        service,
        container="app",
        timeout=30,
        delay=0.05,
    )
    out = executor.run(
        ["dbroll", "migrate", "--migrations", str(mdir)], {"DBROLL_DSN": db.to_dsn()}
    )
    assert not out.ok and out.exit_code == 1
    assert any("statement 2 of 2" in line for line in out.log_lines)


def test_run_task_failures_are_clear_errors(service, aws):
    from botocore.stub import Stubber

    ecs = aws.client("ecs")
    stub = Stubber(ecs)
    stub.add_response(
        "run_task",
        {
            "tasks": [],
            "failures": [
                {
                    "arn": "arn:aws:ecs:eu-west-1:123456789012:container-instance/x",
                    "reason": "RESOURCE:MEMORY",
                }
            ],
        },
    )
    with stub, pytest.raises(AwsError) as e:
        OneOffTasks(ecs).start(service, container="app", command=["dbroll", "status"], env={})
    assert "RESOURCE:MEMORY" in str(e.value) and "prod" in str(e.value)


def test_waiting_is_bounded(service, aws):
    from botocore.stub import Stubber

    ecs = aws.client("ecs")
    stub = Stubber(ecs)
    for _ in range(10):
        stub.add_response(
            "describe_tasks", {"tasks": [{"taskArn": "t", "lastStatus": "RUNNING"}], "failures": []}
        )
    polls = []
    with stub, pytest.raises(AwsError, match="did not stop within"):
        OneOffTasks(ecs).wait_stopped(
            "prod", "t", timeout=0.1, delay=0.05, on_poll=lambda: polls.append(1)
        )
    assert 2 <= len(polls) < 10


def test_local_executor_same_command(db, tmp_path):
    mdir = write_files(tmp_path / "m", {"V1__a.sql": "CREATE TABLE a (id INT);"})
    out = LocalTaskExecutor(timeout=60).run(
        ["dbroll", "migrate", "--migrations", str(mdir)],
        {"DBROLL_DSN": db.to_dsn(), "DBROLL_LOG_FORMAT": "json"},
    )
    assert out.ok and any('"event": "migrate"' in line for line in out.log_lines)
    assert query(db, "SHOW TABLES LIKE 'a'") == [("a",)]
