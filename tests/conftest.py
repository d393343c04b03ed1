"""Shared fixtures: a real MariaDB server, a fresh database per test, migration folders.

Server, in this order: MARIADB_DSN if set (a root-capable DSN); a Docker engine if one
answers (testcontainers, mariadb:10.11); else Debian's mariadbd started here in a temp
dir. No server -> the test fails with the command that installs one; it never skips.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pytest

from pipeline.db.connect import ConnectionSpec, connect, parse_dsn
from pipeline.devdb import INSTALL_HINT, MariaDBServer, make_template
from pipeline.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Server:
    admin: ConnectionSpec  # can create and drop databases
    origin: str  # dsn | docker | local

    def create_database(self) -> ConnectionSpec:
        name = f"t_{uuid.uuid4().hex[:12]}"
        conn = connect(self.admin, database=False)
        try:
            conn.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        finally:
            conn.close()
        return self.admin.with_database(name)

    def drop_database(self, spec: ConnectionSpec) -> None:
        conn = connect(self.admin, database=False)
        try:
            conn.cursor().execute(f"DROP DATABASE IF EXISTS `{spec.database}`")
        finally:
            conn.close()


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env().ping()
        return True
    except Exception:  # noqa: BLE001 - no engine is the common case here
        return False


@pytest.fixture(scope="session")
def mariadb() -> Iterator[Server]:
    dsn = os.environ.get("MARIADB_DSN")
    if dsn:
        yield Server(parse_dsn(dsn), "dsn")
        return
    if _docker_answers():
        from testcontainers.mysql import MySqlContainer

        with MySqlContainer("mariadb:10.11", username="root", password="test", dbname="mysql") as c:
            spec = ConnectionSpec(
                host=c.get_container_host_ip(),
                port=int(c.get_exposed_port(3306)),
                user="root",
                password="test",
                database="mysql",
            )
            yield Server(spec, "docker")
        return
    try:
        template = make_template()
        server = MariaDBServer.start(template)
    except ConfigError as e:
        pytest.fail(f"no MariaDB server for the tests: {e}\n{INSTALL_HINT}", pytrace=False)
    try:
        yield Server(server.spec, "local")
    finally:
        server.stop()
        shutil.rmtree(template, ignore_errors=True)


@pytest.fixture
def db(mariadb: Server) -> Iterator[ConnectionSpec]:
    """A fresh, empty database for this test; dropped afterwards."""
    spec = mariadb.create_database()
    try:
        yield spec
    finally:
        mariadb.drop_database(spec)


@contextlib.contextmanager
def db_user(
    mariadb: Server, db: ConnectionSpec, password: str, privileges: str = "ALL"
) -> Iterator[ConnectionSpec]:
    """A user of its own with `privileges` on the test database (from any host); dropped
    afterwards. Its spec."""
    user = f"u{db.database[-8:]}"
    admin = connect(mariadb.admin, database=False)
    try:
        cur = admin.cursor()
        for host in ("127.0.0.1", "localhost", "%"):
            cur.execute(
                f"CREATE USER '{user}'@'{host.replace('%', '%%')}' IDENTIFIED BY %s", (password,)
            )
            cur.execute(f"GRANT {privileges} ON `{db.database}`.* TO '{user}'@'{host}'")
        yield ConnectionSpec(
            host=db.host, port=db.port, user=user, password=password, database=db.database
        )
    finally:
        for host in ("127.0.0.1", "localhost", "%"):
            admin.cursor().execute(f"DROP USER IF EXISTS '{user}'@'{host}'")
        admin.close()


@pytest.fixture
def dsn(db: ConnectionSpec) -> str:
    return db.to_dsn()


def query(spec: ConnectionSpec, sql: str, args: tuple = ()) -> list[tuple]:
    conn = connect(spec)
    try:
        cur = conn.cursor()
        cur.execute(sql, args or None)
        return list(cur.fetchall())
    finally:
        conn.close()


def schema_objects(
    spec: ConnectionSpec, *, exclude: tuple[str, ...] = ("dbroll_history", "dbroll_lock")
) -> dict:
    """SHOW CREATE of every table, view, routine, trigger and event, AUTO_INCREMENT removed."""
    import re

    conn = connect(spec)
    out: dict[str, str] = {}
    try:
        cur = conn.cursor()
        cur.execute("SHOW FULL TABLES")
        for name, kind in cur.fetchall():
            if name in exclude:
                continue
            if kind == "VIEW":
                cur.execute(f"SHOW CREATE VIEW `{name}`")
                out[f"view {name}"] = cur.fetchone()[1]
            else:
                cur.execute(f"SHOW CREATE TABLE `{name}`")
                out[f"table {name}"] = re.sub(r" AUTO_INCREMENT=\d+", "", cur.fetchone()[1])
        for kind in ("PROCEDURE", "FUNCTION"):
            cur.execute(f"SHOW {kind} STATUS WHERE Db = DATABASE()")
            for row in cur.fetchall():
                cur.execute(f"SHOW CREATE {kind} `{row[1]}`")
                out[f"{kind.lower()} {row[1]}"] = cur.fetchone()[2]
        cur.execute("SHOW TRIGGERS")
        for row in cur.fetchall():
            cur.execute(f"SHOW CREATE TRIGGER `{row[0]}`")
            out[f"trigger {row[0]}"] = cur.fetchone()[2]
        cur.execute("SHOW EVENTS")
        for row in cur.fetchall():
            cur.execute(f"SHOW CREATE EVENT `{row[1]}`")
            out[f"event {row[1]}"] = cur.fetchone()[3]
    finally:
        conn.close()
    # the database name appears in view and routine bodies; normalise it away
    return {k: v.replace(f"`{spec.database}`.", "") for k, v in out.items()}


def write_files(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text).lstrip("\n"))
    return root


def args(spec: ConnectionSpec, mdir: Path, *more: str) -> list[str]:
    """`--dsn` and `--migrations` of a dbroll command on the test database, then `more`."""
    return ["--dsn", spec.to_dsn(), "--migrations", str(mdir), *more]


def history_rows(spec: ConnectionSpec) -> list[tuple]:
    """(version, kind, status, statements_done, statements_total) of each history row."""
    return query(
        spec,
        "SELECT version, kind, status, statements_done, statements_total "
        "FROM dbroll_history ORDER BY id",
    )


def user_tables(spec: ConnectionSpec) -> set[str]:
    """The database's tables but dbroll's own."""
    return {t for (t,) in query(spec, "SHOW TABLES")} - {"dbroll_history", "dbroll_lock"}


SLOW = 8  # migrations of one slow CREATE ... SELECT each (about 0.2 s on these machines)


def slow_create(table: str, rows: int) -> str:
    """A statement the server takes a while over (about 1 s per million rows here), for a
    test to find on the server and stop a runner in: CREATE TABLE ... SELECT of `rows` rows."""
    return (
        f"CREATE TABLE {table} ENGINE=InnoDB AS "
        f"SELECT seq AS id, MD5(seq) AS h FROM seq_1_to_{rows};\n"
    )


def slow_files(n: int = SLOW) -> dict[str, str]:
    """`n` migrations the server takes a while over: time to stop a runner mid-packet."""
    return {f"V{v}__slow{v}.sql": slow_create(f"slow_{v}", 200_000) for v in range(1, n + 1)}


def wait_until_running(spec: ConnectionSpec, proc: subprocess.Popen | None, running: str) -> None:
    """Return once the server runs a statement LIKE `running` in the test database; fail if
    `proc` (what should send it, when a process does) ends first, or after a minute."""
    deadline = time.monotonic() + 60
    while not query(
        spec,
        "SELECT 1 FROM information_schema.processlist WHERE db = %s AND info LIKE %s",
        (spec.database, running),
    ):
        assert proc is None or proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"the server never ran {running!r}"
        time.sleep(0.01)


def start_and_signal(
    spec: ConnectionSpec,
    mdir: Path,
    sig: int,
    running: str = "CREATE TABLE slow_2 %",
    command: tuple[str, ...] = ("migrate",),
) -> str:
    """Start `dbroll <command>` of `mdir` as a real process and send it `sig` once the server
    runs a statement LIKE `running` (by default: slow_files()'s packet is on the server, its
    second migration running); its stderr once it is gone. A signal it handles must end it
    with 128 + the signal's number, as a shell or ECS reports a process the signal killed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", *command, *args(spec, mdir)],
        cwd=REPO,
        env=dict(os.environ, DBROLL_LOG_FORMAT="json"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_running(spec, proc, running)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode in (-sig, 128 + sig), err
        if sig != signal.SIGKILL:
            assert proc.returncode == 128 + sig, err
            assert f"stopped by {signal.Signals(sig).name}" in err, err
        return err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def mariadb_client(spec: ConnectionSpec, sql: str) -> None:
    """Apply SQL with the plain `mariadb` client: the reference behaviour."""
    client = shutil.which("mariadb") or shutil.which("mysql")
    assert client, INSTALL_HINT
    cmd = [
        client,
        "--no-defaults",
        f"-h{spec.host}",
        f"-P{spec.port}",
        f"-u{spec.user}",
        spec.database,
    ]
    env = dict(os.environ, MYSQL_PWD=spec.password) if spec.password else None
    subprocess.run(cmd, input=sql, text=True, check=True, env=env, capture_output=True)


def run_cli(
    *args: str, env: dict | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """Run `python -m pipeline ...` as a real process, JSON logs on stderr."""
    full_env = dict(os.environ, DBROLL_LOG_FORMAT="json", **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=REPO,
    )


__all__ = [
    "CliResult",
    "Moto",
    "Server",
    "dbroll",
    "push_image",
    "mariadb_client",
    "query",
    "run_cli",
    "schema_objects",
    "write_files",
    "pymysql",
]


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def json(self):
        import json

        return json.loads(self.stdout)


def dbroll(*args: str, env: dict | None = None) -> CliResult:
    """Run the CLI in-process (click's CliRunner): fast, same code path as the console script."""
    from click.testing import CliRunner

    from pipeline.cli import cli

    runner = CliRunner()
    result = runner.invoke(cli, ["--log-format", "json", *args], env=env, catch_exceptions=False)
    return CliResult(result.exit_code, result.stdout, result.stderr)


@dataclass
class Moto:
    endpoint: str
    env: dict

    def client(self, service: str):
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name="eu-west-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


@pytest.fixture
def signing_env(monkeypatch, tmp_path) -> Iterator[pytest.MonkeyPatch]:
    """AWS credentials from the environment only (no profile, config file, region or instance
    metadata), for code that signs locally (IAM database tokens); yields the monkeypatch."""
    from pipeline.aws import rds

    for name in ("AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    rds._signer.cache_clear()  # its clients hold the credentials they were made with
    yield monkeypatch
    rds._signer.cache_clear()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws(moto_server, monkeypatch) -> Iterator[Moto]:
    """A clean moto account for this test; boto3 in-process and child processes reach it."""
    import urllib.request

    urllib.request.urlopen(
        urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    ).read()
    env = {
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_REGION": "eu-west-1",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    yield Moto(moto_server, env)


# the shop's task definition as the ECS fixtures register it (Fargate, awsvpc), and its
# app container's log configuration (the one-off tasks' lines land in /ecs/shop)
SHOP_FARGATE = {
    "family": "shop",
    "networkMode": "awsvpc",
    "requiresCompatibilities": ["FARGATE"],
    "cpu": "256",
    "memory": "512",
}
SHOP_AWSLOGS = {
    "logDriver": "awslogs",
    "options": {
        "awslogs-group": "/ecs/shop",
        "awslogs-region": "eu-west-1",
        "awslogs-stream-prefix": "app",
    },
}


def push_image(ecr, repository: str, tag: str, content: str) -> str:
    """Put an image manifest into moto ECR; returns its real digest."""
    import hashlib
    import json

    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 1,
                "digest": "sha256:" + hashlib.sha256(content.encode()).hexdigest(),
            },
            "layers": [],
        }
    )
    digest = "sha256:" + hashlib.sha256(manifest.encode()).hexdigest()
    ecr.put_image(
        repositoryName=repository, imageManifest=manifest, imageTag=tag, imageDigest=digest
    )
    return digest


@pytest.fixture
def ecs_runs_locally(aws, monkeypatch):
    """moto never runs containers: this makes run_task run the task's command override
    here (against the test MariaDB), so the task gets its real exit code, stop reason and
    CloudWatch log lines. Everything else is the real boto3 path."""
    from moto.ecs.models import EC2ContainerServiceBackend

    original = EC2ContainerServiceBackend.run_task
    ran: list[dict] = []

    def run_task(self, *args, **kwargs):
        tasks = original(self, *args, **kwargs)
        overrides = kwargs.get("overrides") or (args[3] if len(args) > 3 else {}) or {}
        for task in tasks:
            co = (overrides.get("containerOverrides") or [{}])[0]
            command = co.get("command") or []
            # the container's environment from the task definition (secrets such as the
            # DSN live there), then the run's overrides
            td = self.describe_task_definition(task.task_definition_arn)
            cdef = next(
                (c for c in td.container_definitions if c.get("name") == co.get("name")), {}
            )
            env = {e["name"]: e["value"] for e in cdef.get("environment", [])}
            env.update({e["name"]: e["value"] for e in co.get("environment", [])})
            argv = (
                [sys.executable, "-m", "pipeline", *command[1:]]
                if command[:1] == ["dbroll"]
                else command
            )
            p = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                cwd=REPO,
                timeout=120,
                env={**aws.env, "PATH": "/usr/bin:/bin", "DBROLL_LOG_FORMAT": "json", **env},
            )
            container = task.containers[0]
            container.exitCode = p.returncode
            task.stopped_reason = "Essential container in task exited"
            ran.append({"command": command, "env": env, "exit": p.returncode})
            logs = aws.client("logs")
            stream = f"app/{co.get('name')}/{task.id}"
            with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
                logs.create_log_group(logGroupName="/ecs/shop")
            logs.create_log_stream(logGroupName="/ecs/shop", logStreamName=stream)
            lines = (p.stdout + p.stderr).splitlines() or ["(no output)"]
            logs.put_log_events(
                logGroupName="/ecs/shop",
                logStreamName=stream,
                logEvents=[
                    {"timestamp": int(time.time() * 1000) + i, "message": line}
                    for i, line in enumerate(lines)
                ],
            )
        return tasks

    monkeypatch.setattr(EC2ContainerServiceBackend, "run_task", run_task)
    return ran


def _moto_api(aws: Moto, path: str, body: dict) -> None:
    import json
    import urllib.request

    req = urllib.request.Request(
        f"{aws.endpoint}/moto-api/state-manager/{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(req).read()


@pytest.fixture
def runner_task(aws) -> Iterator[str]:
    """The ARN of a Fargate task in moto's cluster `runners` that stays RUNNING until the
    test stops it (`ecs.stop_task`): moto's tasks otherwise step to STOPPED as they are
    described."""
    ec2, ecs = aws.client("ec2"), aws.client("ecs")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    subnet = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])[
        "Subnets"
    ][0]["SubnetId"]
    sg = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])[
        "SecurityGroups"
    ][0]["GroupId"]
    ecs.create_cluster(clusterName="runners")
    ecs.register_task_definition(
        **SHOP_FARGATE,
        containerDefinitions=[{"name": "app", "image": "shop:v1", "memory": 512}],
    )
    _moto_api(
        aws,
        "set-transition",
        {"model_name": "ecs::task", "transition": {"progression": "manual", "times": 10_000}},
    )
    try:
        yield ecs.run_task(
            cluster="runners",
            taskDefinition="shop",
            launchType="FARGATE",
            networkConfiguration={
                "awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [sg]}
            },
        )["tasks"][0]["taskArn"]
    finally:
        _moto_api(aws, "unset-transition", {"model_name": "ecs::task"})


@contextlib.contextmanager
def ecs_task_metadata(task_arn: str, body: bytes | None = None) -> Iterator[str]:
    """A stand-in for the ECS agent's task metadata endpoint (v4) on a local port: its
    `/task` names `task_arn` (or answers `body`). Yields the URI the agent puts in
    ECS_CONTAINER_METADATA_URI_V4."""
    import http.server
    import json
    import threading

    payload = (
        body
        if body is not None
        else json.dumps(
            {"Cluster": task_arn.rsplit("/", 1)[0], "TaskARN": task_arn, "LaunchType": "FARGATE"}
        ).encode()
    )

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            ok = self.path == "/v4/c0ffee/task"
            self.send_response(200 if ok else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(payload if ok else b"{}")

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v4/c0ffee"
    finally:
        server.shutdown()
        server.server_close()
