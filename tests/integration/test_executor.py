"""One-off tasks: the real ECS executor path against moto, with tasks that really run.

moto never runs containers, so `ecs_runs_locally` patches moto's run_task: the task's
command override runs here (against the test MariaDB), and the task gets its real exit
code, stop reason and CloudWatch log lines. Everything else is the real boto3 path.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from botocore.exceptions import ClientError

from pipeline.aws.ecs import OneOffTasks
from pipeline.errors import AwsError
from pipeline.executor import EcsTaskExecutor, LocalTaskExecutor
from tests.conftest import (
    REPO,
    args,
    dbroll,
    query,
    slow_files,
    wait_until_running,
    write_files,
)


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


def _interrupted_wait(ecs, service, *, stop_fails: bool = False) -> str:
    """Run a one-off task (plain moto: it stays RUNNING for a few polls) and press Ctrl-C at
    the first poll (raised by a botocore hook before DescribeTasks, the boundary where the
    wait sleeps); the task's ARN."""
    arns: list[str] = []

    def remember(parsed, **_):
        arns.extend(t["taskArn"] for t in parsed.get("tasks", []))

    def interrupt(**_):
        raise KeyboardInterrupt

    def refuse(**_):
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "StopTask")

    ecs.meta.events.register("after-call.ecs.RunTask", remember)
    ecs.meta.events.register("before-call.ecs.DescribeTasks", interrupt)
    if stop_fails:
        ecs.meta.events.register("before-call.ecs.StopTask", refuse)
    with pytest.raises(KeyboardInterrupt):
        OneOffTasks(ecs).run(service, container="app", command=["dbroll", "status"], env={})
    ecs.meta.events.unregister("before-call.ecs.DescribeTasks", interrupt)
    assert len(arns) == 1
    return arns[0]


def test_an_interrupted_wait_stops_the_one_off_task(service, aws):
    # Ctrl-C, or SIGTERM from whatever runs dbroll: the task must not go on changing
    # the database with nobody waiting for it and the service never moved
    ecs = aws.client("ecs")
    arn = _interrupted_wait(ecs, service)
    task = ecs.describe_tasks(cluster="prod", tasks=[arn])["tasks"][0]
    assert task["lastStatus"] == "STOPPED"
    assert task["stoppedReason"] == "dbroll was interrupted while it waited"


def test_a_failed_stop_does_not_hide_the_interrupt(service, aws):
    ecs = aws.client("ecs")
    arn = _interrupted_wait(ecs, service, stop_fails=True)  # still raises KeyboardInterrupt
    task = ecs.describe_tasks(cluster="prod", tasks=[arn])["tasks"][0]
    assert task.get("stoppedReason") != "dbroll was interrupted while it waited"


# a parent process that runs a task locally, as `--executor local` does, with the CLI's
# signal handling
DRIVER = """
import signal, sys
from pipeline.cli import _stop
from pipeline.errors import Terminated
from pipeline.executor import LocalTaskExecutor
signal.signal(signal.SIGTERM, _stop)
try:
    LocalTaskExecutor(timeout=120, on_line=print).run(sys.argv[1:], {})
except Terminated:
    sys.exit(143)
"""


def _slow(tmp_path, n: int):
    return write_files(tmp_path / "m", slow_files(n))


def _stopped_cleanly(db, mdir, n: int) -> None:
    """The run in `mdir` was stopped by SIGTERM: blocked at the interrupted migration, the
    earlier ones applied, nothing left running on the server without its runner."""
    r = dbroll("migrate", *args(db, mdir))
    assert r.exit_code == 3, r.stderr  # blocked at the interrupted migration
    assert "left running" not in r.stderr, r.stderr
    (k,) = query(db, "SELECT version FROM dbroll_history WHERE status = 'running'")[0]
    assert 1 <= int(k) < n
    assert {t for (t,) in query(db, "SHOW TABLES LIKE 'slow%'")} == {
        f"slow_{v}" for v in range(1, int(k))
    }


@pytest.mark.timeout(120)
def test_a_local_task_over_its_time_is_stopped_cleanly(db, tmp_path):
    n = 40  # about 8 s: far over the timeout
    mdir = _slow(tmp_path, n)
    out = LocalTaskExecutor(timeout=3).run(
        ["dbroll", "migrate", *args(db, mdir)],
        {"DBROLL_LOG_FORMAT": "json"},
    )
    assert not out.ok and out.stop_code == "Timeout", out
    text = "\n".join(out.log_lines)
    assert "stopping the statements sent to the server" in text, text
    assert "stopped by SIGTERM" in text, text
    _stopped_cleanly(db, mdir, n)


@pytest.mark.timeout(120)
def test_a_stopped_parent_stops_its_local_task(db, tmp_path):
    n = 6
    mdir = _slow(tmp_path, n)
    argv = ["dbroll", "migrate", *args(db, mdir)]
    parent = subprocess.Popen(
        [sys.executable, "-c", DRIVER, *argv],
        cwd=REPO,
        env=dict(os.environ, DBROLL_LOG_FORMAT="json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        wait_until_running(db, parent, "CREATE TABLE slow_2 %")
        parent.send_signal(signal.SIGTERM)  # to the parent only, as a task runner sends it
        out, _ = parent.communicate(timeout=60)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.communicate()
    assert parent.returncode == 143, out
    # the task got SIGTERM in turn, stopped its statements, and its last words were passed on
    assert "stopping the statements sent to the server" in out, out
    assert "stopped by SIGTERM" in out, out
    _stopped_cleanly(db, mdir, n)
