"""`dbroll demo`: the whole story on embedded defaults, without an AWS account.

A throwaway MariaDB (pipeline.devdb, as the tests use) and an in-process moto server stand
in for RDS and AWS. The shop example's three releases are built and published, deployed
v1 -> v2 -> v3 on an ECS service, then rolled back to v2 (undo, data backed up first) and to
v1 (code only). Every dbroll step runs as the command a user would type, printed first;
the "app" writes rows between steps as the real one would.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError, DbrollError

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "shop" / "migrations"
RELEASES = {"v1": 2, "v2": 4, "v3": 7}  # release -> the last migration version it ships
REGION = "eu-west-1"
ACCOUNT = "123456789012"
BUCKET = "dbroll-demo-artifacts"
CLUSTER, SERVICE, REPO = "demo", "shop", "shop"


@dataclass
class DemoStep:
    name: str
    strategy: str = ""
    versions: str = ""
    at_risk: str = ""
    backed_up: str = ""
    seconds: float = 0.0

    def row(self) -> tuple[str, ...]:
        return (
            self.name,
            self.strategy or "-",
            self.versions or "-",
            self.at_risk or "-",
            self.backed_up or "-",
            f"{self.seconds:.1f}s",
        )


@dataclass
class DemoResult:
    dsn: str
    endpoint: str
    steps: list[DemoStep] = field(default_factory=list)


def _release_dir(root: Path, release: str) -> Path:
    """The migration folder as the release's image ships it (versions up to its last)."""
    last = RELEASES[release]
    out = root / "src" / release
    out.mkdir(parents=True)
    for f in sorted(EXAMPLE.iterdir()):
        if f.name.startswith(("V", "U")) and int(f.name[1:].split("__", 1)[0]) > last:
            continue
        shutil.copy2(f, out / f.name)
    return out


def _push_image(ecr: Any, tag: str) -> str:
    """Put an image manifest into (moto) ECR under `tag`; returns its digest."""
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 1,
                "digest": "sha256:" + hashlib.sha256(f"shop {tag}".encode()).hexdigest(),
            },
            "layers": [],
        }
    )
    digest = "sha256:" + hashlib.sha256(manifest.encode()).hexdigest()
    ecr.put_image(repositoryName=REPO, imageManifest=manifest, imageTag=tag, imageDigest=digest)
    return digest


@contextmanager
def _servers(dsn: str | None, endpoint: str | None) -> Iterator[tuple[str, str]]:
    """(dsn, AWS endpoint): the given ones, or a throwaway MariaDB and moto started here."""
    stack: list[Callable[[], None]] = []
    try:
        if dsn is None:
            from pipeline.devdb import MariaDBServer

            server = MariaDBServer.start()
            stack.append(server.stop)
            import pymysql

            conn = pymysql.connect(host="127.0.0.1", port=server.port, user="root")
            conn.cursor().execute("CREATE DATABASE shop")
            conn.close()
            dsn = server.dsn("shop")
        if endpoint is None:
            try:
                from moto.server import ThreadedMotoServer
            except ImportError:
                raise ConfigError(
                    "the demo needs moto (the in-process AWS stand-in)",
                    hint="`make demo` installs it; or pip install 'moto[server]'",
                ) from None
            import logging

            logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request
            moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            moto.start()
            stack.append(moto.stop)
            host, port = moto.get_host_and_port()
            endpoint = f"http://{host}:{port}"
            os.environ["MOTO_ECS_SERVICE_RUNNING"] = "1"  # read by the moto in this process
        yield dsn, endpoint
    finally:
        for stop in reversed(stack):
            stop()


class _Demo:
    def __init__(self, dsn: str, endpoint: str, work: Path, echo: Callable[[str], None], tty: bool):
        self.dsn = dsn
        self.endpoint = endpoint
        self.work = work
        self.echo = echo
        self.tty = tty
        self.env = {
            **os.environ,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "demo",
            "AWS_SECRET_ACCESS_KEY": "demo",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "DBROLL_BUCKET": BUCKET,
            "DBROLL_DSN": dsn,
            "DBROLL_POLL_SECONDS": "0.2",
            "DBROLL_RUN_ID": "demo",
        }
        self.env.pop("AWS_PROFILE", None)
        import boto3

        self.session = boto3.session.Session(
            aws_access_key_id="demo", aws_secret_access_key="demo", region_name=REGION
        )
        self.digests: dict[str, str] = {}

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.endpoint)

    # -- output
    def title(self, text: str) -> None:
        self.echo("")
        self.echo(f"\033[1m== {text}\033[0m" if self.tty else f"== {text}")

    def dbroll(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        shown = " ".join(args).replace(self.dsn, "$DBROLL_DSN")
        self.echo(f"$ dbroll {shown}")
        argv = [sys.executable, "-m", "pipeline", "--log-format", "console" if self.tty else "json"]
        p = subprocess.run(
            [*argv, *args], env=self.env, capture_output=True, text=True, timeout=600
        )
        for line in (p.stdout + p.stderr).splitlines():
            self.echo(f"  {line}")
        if check and p.returncode != 0:
            raise DbrollError(
                f"demo step `dbroll {shown}` failed with exit {p.returncode}",
                hint="the output above says why; `dbroll demo --keep` leaves the servers up "
                "to look around",
            )
        return p

    def sql(self, statements: list[str]) -> None:
        from pipeline.db.connect import connect, parse_dsn

        conn = connect(parse_dsn(self.dsn))
        try:
            cur = conn.cursor()
            for s in statements:
                cur.execute(s)
        finally:
            conn.close()

    def app(self, release: str, what: str, statements: list[str]) -> None:
        self.echo(f"  (app {release} writes {what})")
        self.sql(statements)

    def audit(self) -> dict:
        s3 = self.client("s3")
        keys = sorted(
            o["Key"]
            for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="dbroll/audit/").get("Contents", [])
        )
        return json.loads(s3.get_object(Bucket=BUCKET, Key=keys[-1])["Body"].read())

    # -- the story
    def build(self) -> DemoStep:
        t0 = time.monotonic()
        self.title("build: a manifest per release, published next to its image")
        s3 = self.client("s3")
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        ecr = self.client("ecr")
        ecr.create_repository(repositoryName=REPO)
        for release in RELEASES:
            src = _release_dir(self.work, release)
            out = self.work / "build" / release
            self.dbroll(
                "manifest", "build", "--migrations", str(src), "--out", str(out),
                "--app-version", release,
            )  # fmt: skip
            self.digests[release] = _push_image(ecr, release)
            self.echo(f"  (docker push {REPO}:{release} -> {self.digests[release][:19]}...)")
            self.dbroll(
                "manifest", "publish", "--manifest", str(out), "--image", f"{REPO}:{release}"
            )
        return DemoStep("build + publish v1, v2, v3", seconds=time.monotonic() - t0)

    def first_release(self) -> DemoStep:
        t0 = time.monotonic()
        self.title("v1 goes live: its container applies its migrations at start")
        self.dbroll("migrate", "--manifest", f"{REPO}:v1")
        ecs = self.client("ecs")
        ecs.create_cluster(clusterName=CLUSTER)
        image = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{REPO}@{self.digests['v1']}"
        td = ecs.register_task_definition(
            family=SERVICE,
            containerDefinitions=[
                {"name": "app", "image": image, "memory": 256, "essential": True}
            ],
        )["taskDefinition"]["taskDefinitionArn"]
        ecs.create_service(cluster=CLUSTER, serviceName=SERVICE, taskDefinition=td, desiredCount=1)
        self.echo(f"  (ECS service {CLUSTER}/{SERVICE} runs {REPO}:v1)")
        self.app(
            "v1",
            "3 customers and 4 orders",
            [
                "INSERT INTO customers (email, full_name, phone) VALUES "
                "('ada@example.com', 'Ada Lovelace', '+44 20 1'), "
                "('alan@example.com', 'Alan Turing', NULL), "
                "('grace@example.com', 'Grace Hopper', '+1 202 2')",
                "INSERT INTO orders (customer_id, total, status) VALUES "
                "(1, 12.50, 'paid'), (1, 7.00, 'new'), (2, 99.90, 'shipped'), (3, 5.25, 'paid')",
            ],
        )
        return DemoStep(
            "v1 live (migrate at start)", "migrate", "1-2", seconds=time.monotonic() - t0
        )

    def deploy(self, release: str, what: str, statements: list[str]) -> DemoStep:
        t0 = time.monotonic()
        self.title(f"deploy {release}: its migrations run first, in a one-off task")
        self.dbroll(
            "deploy", "--cluster", CLUSTER, "--service", SERVICE, "--image", f"{REPO}:{release}",
            "--executor", "local",
        )  # fmt: skip
        record = self.audit()
        self.app(release, what, statements)
        first = RELEASES[_previous(release)] + 1
        return DemoStep(
            f"deploy {release}",
            record["plan"]["strategy"],
            f"{first}-{RELEASES[release]}",
            seconds=time.monotonic() - t0,
        )

    def rollback(self, release: str, extra: list[str]) -> DemoStep:
        t0 = time.monotonic()
        self.title(f"roll back to {release}")
        self.dbroll(
            "rollback", "--cluster", CLUSTER, "--service", SERVICE, "--to", f"{REPO}:{release}",
            "--executor", "local", "--yes", *extra,
        )  # fmt: skip
        record = self.audit()
        reverted = [r["version"] for r in record["plan"].get("reverted", [])]
        risk = record.get("data_at_risk") or []
        backup = record.get("backup") or {}
        if record.get("schema_matches"):
            self.echo(f"  (the schema equals {release}'s snapshot, taken when it was deployed)")
        elif record.get("schema_drift"):
            self.echo(f"  (the schema differs from {release}'s snapshot: {record['schema_drift']})")
        return DemoStep(
            f"rollback to {release}",
            record["plan"]["strategy"],
            ", ".join(reverted),
            ", ".join(f"{r['rows']} rows {r['what']}" for r in risk if r.get("rows")),
            f"{backup.get('rows', 0)} rows -> {backup['uri']}" if backup.get("uri") else "",
            seconds=time.monotonic() - t0,
        )

    def service_image(self) -> str:
        ecs = self.client("ecs")
        svc = ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0]
        td = ecs.describe_task_definition(taskDefinition=svc["taskDefinition"])["taskDefinition"]
        return td["containerDefinitions"][0]["image"]


def _previous(release: str) -> str:
    names = list(RELEASES)
    return names[names.index(release) - 1]


def run_demo(
    *,
    echo: Callable[[str], None],
    tty: bool,
    dsn: str | None = None,
    endpoint: str | None = None,
    keep: bool = False,
    wait: Callable[[], None] | None = None,
) -> DemoResult:
    """Run the story; `dsn`/`endpoint` reuse a server (its database must be empty)."""
    from pipeline.render import render_table

    if not EXAMPLE.is_dir():
        raise ConfigError(
            f"{EXAMPLE}: the shop example is missing", hint="run from a dbroll checkout"
        )
    t_all = time.monotonic()
    with (
        _servers(dsn, endpoint) as (db, aws),
        tempfile.TemporaryDirectory(prefix="dbroll-demo-") as tmp,
    ):
        d = _Demo(db, aws, Path(tmp), echo, tty)
        result = DemoResult(db, aws)
        echo(f"MariaDB: {db.split('@')[-1]}   AWS (moto): {aws}   bucket: {BUCKET}")
        result.steps.append(d.build())
        result.steps.append(d.first_release())
        result.steps.append(
            d.deploy(
                "v2",
                "2 coupons and an order from the app channel",
                [
                    "INSERT INTO coupons VALUES ('WELCOME10', 10, NULL), ('SUMMER25', 25, '2026-09-30')",
                    "INSERT INTO orders (customer_id, total, channel) VALUES (2, 19.99, 'app')",
                ],
            )
        )
        result.steps.append(
            d.deploy(
                "v3",
                "loyalty points for 2 customers and a new customer",
                [
                    "UPDATE customers SET loyalty_points = 120 WHERE id = 1",
                    "UPDATE customers SET loyalty_points = 40 WHERE id = 3",
                    "INSERT INTO customers (email, name, loyalty_points) "
                    "VALUES ('edsger@example.com', 'Edsger Dijkstra', 10)",
                ],
            )
        )
        result.steps.append(d.rollback("v2", ["--backup", f"s3://{BUCKET}/dbroll"]))
        result.steps.append(d.rollback("v1", []))
        d.title("where things stand")
        d.dbroll(
            "status", "--migrations", str(Path(tmp) / "src" / "v1"),
            *(a for r in RELEASES for a in ("--image", f"{REPO}:{r}")),
            check=False,
        )  # fmt: skip
        echo(f"  service {CLUSTER}/{SERVICE} runs {d.service_image()}")
        d.title("summary")
        header = ("step", "strategy", "versions", "data at risk", "backed up", "time")
        for line in render_table(header, [s.row() for s in result.steps]).splitlines():
            echo(f"  {line}")
        echo(f"  total {time.monotonic() - t_all:.1f}s")
        if keep:
            echo("")
            echo("The servers stay up until you press Ctrl-C. In another shell:")
            echo(f"  export DBROLL_DSN='{db}'")
            echo(
                f"  export AWS_ENDPOINT_URL={aws} AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo"
            )
            echo(f"  export AWS_DEFAULT_REGION={REGION} DBROLL_BUCKET={BUCKET}")
            echo(f"  dbroll status --migrations {EXAMPLE} --image {REPO}:v3")
            if wait is not None:
                wait()
        return result
