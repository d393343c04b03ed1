"""Passwords never appear in any output: stdout, stderr, logs, errors, history."""

from __future__ import annotations

import json

import pytest

from tests.conftest import db_user, query, run_cli, write_files

PASSWORD = "Tr0ub4dor&3-s3cr3t"


@pytest.fixture
def secret_user(mariadb, db):
    with db_user(mariadb, db, PASSWORD) as spec:
        yield spec


def test_no_command_prints_the_password(secret_user, tmp_path):
    mdir = write_files(
        tmp_path / "m",
        {
            "V1__a.sql": "CREATE TABLE a (id INT);",
            "U1__a.sql": "DROP TABLE a;",
            # a failing statement, so error paths are covered too
            "V2__bad.sql": "CREATE TABLE b (id INT);\nINSERT INTO nowhere VALUES (1);",
        },
    )
    dsn = secret_user.to_dsn()
    assert PASSWORD.replace("&", "%26") in dsn or PASSWORD in dsn
    outputs = []
    commands = [
        ["migrate"],
        ["status"],
        ["status", "--json"],
        ["validate"],
        ["resume"],
        ["repair", "--as", "reverted"],
        ["undo", "--target", "0"],
        ["migrate", "--dry-run"],
        ["baseline", "--version", "1"],
    ]
    for command in commands:
        p = run_cli(*command, "--dsn", dsn, "--migrations", str(mdir), "-v")
        outputs.append((command, p.returncode, p.stdout + p.stderr))
    # a wrong password and an unreachable database: error paths of connecting
    bad = dsn.replace("@", "x@", 1)
    p = run_cli("status", "--dsn", bad, "--migrations", str(mdir))
    outputs.append((["status-bad-password"], p.returncode, p.stdout + p.stderr))
    p = run_cli(
        "status", "--dsn", dsn.replace(f":{secret_user.port}/", ":1/"), "--migrations", str(mdir)
    )
    outputs.append((["status-unreachable"], p.returncode, p.stdout + p.stderr))
    # the commands really ran (else the check proves nothing)
    codes = {tuple(c): rc for c, rc, _ in outputs}
    assert codes[("migrate",)] == 1 and codes[("status",)] == 0
    assert codes[("status-bad-password",)] == 1 and codes[("status-unreachable",)] == 1
    for command, _rc, text in outputs:
        assert PASSWORD not in text, command
        assert PASSWORD.replace("&", "%26") not in text, command
        assert "Tr0ub4dor" not in text, command
    rows = query(secret_user, "SELECT * FROM dbroll_history")
    assert rows and PASSWORD not in repr(rows)


def test_dsn_secret_from_secrets_manager(secret_user, tmp_path):
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        env = {
            "AWS_ENDPOINT_URL": f"http://{host}:{port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "eu-west-1",
        }
        import boto3

        sm = boto3.client(
            "secretsmanager",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            region_name="eu-west-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        sm.create_secret(
            Name="app/db",
            SecretString=json.dumps(
                {
                    "engine": "mariadb",
                    "host": secret_user.host,
                    "port": secret_user.port,
                    "username": secret_user.user,
                    "password": PASSWORD,
                    "dbname": secret_user.database,
                }
            ),
        )
        sm.create_secret(Name="app/broken", SecretString="not json")
        mdir = write_files(tmp_path / "m", {"V1__a.sql": "CREATE TABLE a (id INT);"})
        p = run_cli("migrate", "--dsn-secret", "app/db", "--migrations", str(mdir), env=env)
        assert p.returncode == 0, p.stderr
        assert query(secret_user, "SHOW TABLES LIKE 'a'") == [("a",)]
        missing = run_cli("status", "--dsn-secret", "app/nope", "--migrations", str(mdir), env=env)
        assert missing.returncode == 2 and "app/nope" in missing.stderr
        broken = run_cli("status", "--dsn-secret", "app/broken", "--migrations", str(mdir), env=env)
        assert broken.returncode == 2 and "not JSON" in broken.stderr
        for proc in (p, missing, broken):
            assert PASSWORD not in proc.stdout + proc.stderr
    finally:
        server.stop()
