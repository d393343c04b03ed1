"""DSN parsing, TLS options and secret redaction (pure)."""

from __future__ import annotations

import io
import json

import pytest
import structlog

from pipeline import log
from pipeline.db.connect import _ssl_kwargs, parse_dsn, spec_from_secret
from pipeline.errors import ConfigError


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        ("mysql://app:pw@db.internal:3307/shop", ("db.internal", 3307, "app", "pw", "shop")),
        ("mariadb://app@db/shop", ("db", 3306, "app", "", "shop")),
        ("mysql://a%40b:p%2Fw%3A@h/x", ("h", 3306, "a@b", "p/w:", "x")),
        ("mysql://root@127.0.0.1:1234/my-db", ("127.0.0.1", 1234, "root", "", "my-db")),
    ],
)
def test_parse_dsn(dsn, expected):
    s = parse_dsn(dsn)
    assert (s.host, s.port, s.user, s.password, s.database) == expected
    assert s.password not in s.describe() or not s.password
    assert "pw" not in repr(s) or s.password != "pw"


def test_round_trip_to_dsn():
    s = parse_dsn("mysql://a%40b:p%2Fw%3A@h:1/x?ssl_ca=/etc/ca.pem&ssl=required")
    assert parse_dsn(s.to_dsn()) == s


@pytest.mark.parametrize(
    ("dsn", "needle"),
    [
        ("", "no database"),
        ("postgres://u:hunter22@h/db", "scheme"),
        ("mysql://u:hunter22@h", "names no database"),
        ("mysql://u:hunter22@h/db?sslmode=on", "sslmode"),
        ("mysql://u:hunter22@h:notaport/db", "invalid DSN"),
    ],
)
def test_bad_dsn_errors_hide_the_password(dsn, needle):
    with pytest.raises(ConfigError) as e:
        parse_dsn(dsn)
    assert needle in str(e.value)
    assert "hunter22" not in str(e.value)
    assert e.value.exit_code == 2


def test_ssl_options():
    assert _ssl_kwargs({}) == {}  # remote: PyMySQL's opportunistic TLS
    assert _ssl_kwargs({}, "127.0.0.1") == {"ssl_disabled": True}
    kw = _ssl_kwargs({"ssl": "required"})
    assert kw["ssl"] == {} and kw["ssl_verify_cert"] is False
    kw = _ssl_kwargs({"ssl_ca": "/ca.pem"})
    assert kw["ssl_ca"] == "/ca.pem" and kw["ssl_verify_cert"] is True
    kw = _ssl_kwargs({"ssl": "verify_identity", "ssl_ca": "/ca.pem"})
    assert kw["ssl_verify_identity"] is True
    assert _ssl_kwargs({"ssl": "disabled", "ssl_ca": "/ca.pem"}) == {"ssl_disabled": True}
    assert _ssl_kwargs({"ssl": "required"}, "127.0.0.1")["ssl"] == {}


def test_secret_string():
    spec = spec_from_secret(
        json.dumps(
            {"host": "h", "port": 3307, "username": "u", "password": "very-secret-1", "dbname": "d"}
        ),
        "arn:x",
    )
    assert (spec.host, spec.port, spec.user, spec.database) == ("h", 3307, "u", "d")
    assert log.redact("oops very-secret-1 leaked") == "oops *** leaked"
    with pytest.raises(ConfigError, match="lacks dbname"):
        spec_from_secret(json.dumps({"host": "h", "username": "u", "password": "x"}), "s")
    with pytest.raises(ConfigError, match="not JSON"):
        spec_from_secret("{", "s")


def test_redact_urls_and_registered_secrets():
    log.register_secret("zebra-horse-42")
    assert log.redact("mysql://u:anything@h/db") == "mysql://u:***@h/db"
    assert log.redact("password zebra-horse-42 here") == "password *** here"
    assert log.redact("no secret") == "no secret"


def test_log_lines_are_redacted():
    log.register_secret("kiwi-mango-77")
    out = io.StringIO()
    log.configure("json", stream=out)
    logger = structlog.get_logger("t")
    logger.info(
        "connecting", dsn="mysql://u:kiwi-mango-77@h/db", password="p", note="kiwi-mango-77"
    )
    try:
        raise RuntimeError("failed with kiwi-mango-77")
    except RuntimeError:
        logger.exception("boom")
    text = out.getvalue()
    assert "kiwi-mango-77" not in text
    first = json.loads(text.splitlines()[0])
    assert first["password"] == "***" and first["dsn"] == "mysql://u:***@h/db"
    assert "failed with ***" in text
