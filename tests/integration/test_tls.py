"""TLS against a real MariaDB that offers it (a server of this module's own, started with a
certificate made here for the name `localhost` only): each `ssl=` mode connects when it
should, refuses when it should, and says why."""

from __future__ import annotations

import datetime
import os
import shutil

import botocore.auth
import botocore.session
import pytest

from pipeline.db.connect import connect, parse_dsn
from pipeline.devdb import MariaDBServer, make_template
from pipeline.errors import ConfigError, DatabaseError
from tests.certs import make_cert, write_pem
from tests.conftest import INSTALL_HINT, dbroll, query, write_files


class TLSServer:
    def __init__(self, server: MariaDBServer, ca: str, other_ca: str) -> None:
        self.server, self.ca, self.other_ca = server, ca, other_ca

    def spec(self, host: str, query: str):
        return parse_dsn(f"mysql://root@{host}:{self.server.port}/mysql?{query}")


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory) -> TLSServer:
    d = tmp_path_factory.mktemp("tls")
    ca, ca_key = make_cert("dbroll test CA")
    other, _ = make_cert("another CA")
    cert, key = make_cert("localhost", issuer=(ca, ca_key))
    template = make_template()
    try:
        server = MariaDBServer.start(
            template,
            options=(
                f"--ssl-cert={write_pem(d / 'server.pem', cert)}",
                f"--ssl-key={write_pem(d / 'server.key', key)}",
            ),
        )
    except ConfigError as e:
        pytest.fail(f"no MariaDB server for the TLS tests: {e}\n{INSTALL_HINT}", pytrace=False)
    finally:
        shutil.rmtree(template, ignore_errors=True)
    try:
        yield TLSServer(server, write_pem(d / "ca.pem", ca), write_pem(d / "other.pem", other))
    finally:
        server.stop()


def _cipher(spec) -> str:
    conn = connect(spec)
    try:
        cur = conn.cursor()
        cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        return cur.fetchone()[1]
    finally:
        conn.close()


def test_required_encrypts_without_checking_the_certificate(tls_server):
    assert _cipher(tls_server.spec("127.0.0.1", "ssl=required"))
    # a loopback DSN without options is plain text (nothing to protect, 40 ms saved)
    assert _cipher(parse_dsn(f"mysql://root@127.0.0.1:{tls_server.server.port}/mysql")) == ""


def test_verify_ca_checks_who_signed_the_certificate(tls_server):
    assert _cipher(tls_server.spec("127.0.0.1", f"ssl=verify_ca&ssl_ca={tls_server.ca}"))
    with pytest.raises(DatabaseError, match="CERTIFICATE_VERIFY_FAILED") as e:
        connect(tls_server.spec("127.0.0.1", f"ssl=verify_ca&ssl_ca={tls_server.other_ca}"))
    assert "ssl_ca" in e.value.hint
    # ssl_ca alone means verify it, too
    with pytest.raises(DatabaseError, match="CERTIFICATE_VERIFY_FAILED"):
        connect(tls_server.spec("127.0.0.1", f"ssl_ca={tls_server.other_ca}"))


def test_verify_identity_checks_the_host_name(tls_server):
    ok = f"ssl=verify_identity&ssl_ca={tls_server.ca}"
    assert _cipher(tls_server.spec("localhost", ok))
    with pytest.raises(DatabaseError, match="CERTIFICATE_VERIFY_FAILED") as e:
        connect(tls_server.spec("127.0.0.1", ok))  # the certificate names localhost only
    assert "verify_identity" in e.value.hint


def test_status_says_how_the_database_was_reached(tls_server, tmp_path):
    mdir = str(write_files(tmp_path / "m", {}))
    port = tls_server.server.port

    def facts(host: str, query: str = "") -> dict:
        dsn = f"mysql://root@{host}:{port}/mysql" + (f"?{query}" if query else "")
        r = dbroll("status", "--dsn", dsn, "--migrations", mdir, "--json")
        assert r.exit_code == 0, r.stderr
        return r.json["connection"]

    verified = facts("localhost", f"ssl=verify_identity&ssl_ca={tls_server.ca}")
    assert verified["tls"].startswith("TLSv1.")
    assert (verified["verified"], verified["auth"]) == ("certificate and host name", "no password")
    assert facts("127.0.0.1", f"ssl_ca={tls_server.ca}")["verified"] == "certificate"
    assert facts("127.0.0.1", "ssl=required")["verified"] == "nothing"
    assert facts("127.0.0.1") == {
        "tls": None,
        "verified": None,
        "auth": "no password",
        "socket": False,
    }
    sock = os.path.join(tls_server.server.datadir, "s.sock")  # the server's temp root
    assert facts("localhost", f"unix_socket={sock}")["socket"] is True
    text = dbroll(
        "status", "--dsn", f"mysql://root@127.0.0.1:{port}/mysql?ssl=required", "--migrations", mdir
    )
    assert "connected: TLSv1." in text.stdout and "server certificate not verified" in text.stdout


def test_verify_identity_with_the_system_cas_still_checks_the_host_name(tls_server, monkeypatch):
    """Without ssl_ca the system's CAs decide (here: SSL_CERT_FILE, which OpenSSL reads as
    the system's store). PyMySQL alone would skip the host name check in this case."""
    monkeypatch.setenv("SSL_CERT_FILE", tls_server.ca)
    assert _cipher(tls_server.spec("localhost", "ssl=verify_identity"))
    with pytest.raises(DatabaseError, match="CERTIFICATE_VERIFY_FAILED"):
        connect(tls_server.spec("127.0.0.1", "ssl=verify_identity"))
    assert _cipher(tls_server.spec("127.0.0.1", "ssl=verify_ca"))


SIGNED_AT = datetime.datetime(2026, 11, 30, 12, 0, 0)


@pytest.fixture
def iam_user(tls_server, signing_env):
    """A user whose password is the token RDS would receive: signed by botocore itself (not
    by dbroll's code) for 127.0.0.1:<port>, user iam_app, eu-west-1, at SIGNED_AT, with the
    clock botocore signs by frozen there. (RDS checks a token with AWSAuthenticationPlugin;
    a test server can only compare it.) REQUIRE SSL: the server refuses it in plain text."""
    signing_env.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: SIGNED_AT)
    port = tls_server.server.port
    token = (
        botocore.session.get_session()
        .create_client("rds", region_name="eu-west-1")
        .generate_db_auth_token("127.0.0.1", port, "iam_app")
    )
    root = parse_dsn(f"mysql://root@127.0.0.1:{port}/mysql")
    query(root, "CREATE DATABASE iam_shop")
    query(root, "CREATE USER 'iam_app'@'%%' IDENTIFIED BY %s REQUIRE SSL", (token,))
    query(root, "GRANT ALL ON iam_shop.* TO 'iam_app'@'%'")
    try:
        yield token
    finally:
        query(root, "DROP USER 'iam_app'@'%'")
        query(root, "DROP DATABASE iam_shop")


def test_iam_token_is_the_password_and_goes_over_tls(tls_server, iam_user, tmp_path):
    port = tls_server.server.port
    dsn = f"mysql://iam_app@127.0.0.1:{port}/iam_shop?iam=true&region=eu-west-1"
    # TLS even on loopback (a DSN without iam=true would be plain text here)
    assert _cipher(parse_dsn(dsn))
    st = dbroll("status", "--dsn", dsn, "--migrations", str(write_files(tmp_path / "e", {})))
    assert "; IAM token" in st.stdout, st.stderr
    # a whole run: `migrate` opens its connections with tokens; none shows in its output
    mdir = write_files(tmp_path / "m", {"V1__a.sql": "CREATE TABLE a (id INT);\n"})
    r = dbroll("migrate", "--dsn", dsn, "--migrations", str(mdir))
    assert r.exit_code == 0, r.stderr
    assert iam_user not in r.stdout + r.stderr
    assert "X-Amz-Signature" not in r.stdout + r.stderr
    shop = parse_dsn(f"mysql://root@127.0.0.1:{port}/iam_shop")
    assert query(shop, "SELECT installed_by, status FROM dbroll_history") == [
        ("iam_app", "success")
    ]
    # signed for another region: RDS would refuse it, this server does; the error says what
    # to check and never shows the token
    with pytest.raises(DatabaseError, match="Access denied") as e:
        connect(parse_dsn(dsn.replace("eu-west-1", "eu-central-1")))
    assert "AWSAuthenticationPlugin" in e.value.hint and "rds-db:connect" in e.value.hint
    assert "X-Amz-Signature" not in str(e.value)
