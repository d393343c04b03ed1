"""DSN parsing, TLS options and secret redaction (pure)."""

from __future__ import annotations

import io
import json
import ssl

import pytest
import structlog

from pipeline import log
from pipeline.db.connect import ConnectionSpec, _ssl_kwargs, parse_dsn, spec_from_secret
from pipeline.errors import ConfigError
from tests.certs import make_cert, write_pem


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


REMOTE = ConnectionSpec(host="db.internal")
LOOPBACK = ConnectionSpec(host="127.0.0.1")


def test_ssl_options(tmp_path):
    assert _ssl_kwargs({}, REMOTE) == {}  # remote: PyMySQL's opportunistic TLS
    assert _ssl_kwargs({}, LOOPBACK) == {"ssl_disabled": True}
    assert _ssl_kwargs({"ssl": "disabled", "ssl_ca": "/ca.pem"}, REMOTE) == {"ssl_disabled": True}
    ca = write_pem(tmp_path / "ca.pem", make_cert("a CA")[0])

    def ctx(opts, spec=REMOTE):
        c = _ssl_kwargs(opts, spec)["ssl"]
        return c.verify_mode, c.check_hostname

    none, required = ssl.CERT_NONE, ssl.CERT_REQUIRED
    assert ctx({"ssl": "required"}) == (none, False)
    assert ctx({"ssl": "required"}, LOOPBACK) == (none, False)  # asked for: TLS on loopback
    assert ctx({"ssl_ca": ca}) == (required, False)
    assert ctx({"ssl": "verify_ca"}) == (required, False)  # the system's CAs
    assert ctx({"ssl": "verify_identity"}) == (required, True)
    assert ctx({"ssl": "verify_identity", "ssl_ca": ca}) == (required, True)
    # an IAM token goes over TLS only, loopback included; a stricter mode stays as asked
    assert ctx({"iam": "true"}, LOOPBACK) == (none, False)
    assert ctx({"iam": "true", "ssl": "verify_identity"}) == (required, True)


@pytest.mark.parametrize(
    ("option", "needle"),
    [
        ("ssl=requierd", "unknown TLS mode"),
        ("ssl=", "unknown TLS mode"),
        ("connect_timeout=abc", "positive number"),
        ("connect_timeout=0", "positive number"),
        ("connect_timeout=inf", "positive number"),
        ("charset=utf9", "character set"),
        ("tcp_keepalive=-1", "whole number"),
        ("tcp_keepalive=1.5", "whole number"),
        ("tcp_keepalive=99999", "whole number"),
        ("tcp_keepalive=\u00b2", "whole number"),
        ("ssl_ca=", "empty"),
        ("iam=maybe", "not true or false"),
        ("region=Ireland", "not an AWS region"),
    ],
)
def test_bad_option_values_are_named(option, needle):
    key = option.split("=")[0]
    with pytest.raises(ConfigError) as e:
        parse_dsn(f"mysql://u:hunter22@h/db?{option}")
    assert f"DSN option {key}=" in str(e.value) and needle in str(e.value)
    assert "hunter22" not in str(e.value)
    assert e.value.exit_code == 2


def test_option_values_are_normalised():
    def opts(q):
        return dict(parse_dsn(f"mysql://u@h/db?{q}").options)

    assert opts("ssl=TRUE&tcp_keepalive=030") == {"ssl": "required", "tcp_keepalive": "30"}
    assert opts("ssl=0") == {"ssl": "disabled"}
    assert opts("iam=1&region=us-gov-west-1") == {"iam": "true", "region": "us-gov-west-1"}
    assert opts("iam=False") == {"iam": "false"}
    assert opts("ssl=Verify_Identity&charset=latin1") == {
        "ssl": "verify_identity",
        "charset": "latin1",
    }


@pytest.mark.parametrize(
    ("dsn", "needle"),
    [
        ("mysql://u:hunter22@h/db?iam=true", "has a password and iam=true"),
        ("mysql://u@h/db?iam=true&ssl=disabled", "only sent over TLS"),
        ("mysql://u@h/db?iam=true&unix_socket=/run/mysqld.sock", "signed for a TCP host"),
        ("mysql://u@h/db?region=eu-west-1", "only used with iam=true"),
        ("mysql://u@h/db?iam=false&region=eu-west-1", "only used with iam=true"),
    ],
)
def test_options_that_contradict_each_other_are_errors(dsn, needle):
    with pytest.raises(ConfigError, match=needle) as e:
        parse_dsn(dsn)
    assert "hunter22" not in str(e.value) and e.value.hint


def test_unreadable_or_broken_certificate_files_are_config_errors(tmp_path):
    missing = tmp_path / "missing.pem"
    with pytest.raises(ConfigError, match=f"ssl_ca={missing}.*cannot read it"):
        _ssl_kwargs({"ssl_ca": str(missing)}, REMOTE)
    broken = tmp_path / "broken.pem"
    broken.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match="cannot set up TLS") as e:
        _ssl_kwargs({"ssl": "verify_ca", "ssl_ca": str(broken)}, REMOTE)
    assert "PEM" in e.value.hint


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


@pytest.fixture
def own_secrets(monkeypatch):
    """Secrets registered in this test are forgotten after it (false, 1234 and socket would
    mask other tests' output)."""
    monkeypatch.setattr(log, "_SECRETS", set(log._SECRETS))
    monkeypatch.setattr(log, "_BY_LENGTH", list(log._BY_LENGTH))


def test_json_is_redacted_by_value_and_stays_valid(own_secrets):
    """A password such as false, 1234 or socket must not replace JSON literals or keys;
    one with a quote or a non-ASCII letter must be masked although JSON escapes it."""
    for secret in ("false", "1234", "socket", 'q"uo\\te-9', "pässwört-9"):
        log.register_secret(secret)
    data = {
        "socket": False,
        "tls": None,
        "port": 1234,
        "ok": True,
        "dsn": "mysql://u:false@h/db",
        "notes": ["socket false 1234", 'q"uo\\te-9 and pässwört-9'],
    }
    out = json.loads(log.redact_json(data, indent=2, sort_keys=True))
    assert out == {
        "socket": False,
        "tls": None,
        "port": 1234,
        "ok": True,
        "dsn": "mysql://u:***@h/db",
        "notes": ["*** *** ***", "*** and ***"],
    }
    # ensure_ascii (json's default) escapes ä: the secret is masked before that
    assert "p\\u00e4ssw" not in log.redact_json(["pässwört-9"])
    # what `default` makes of other objects is redacted too
    assert json.loads(log.redact_json({"p": ValueError("socket")}, default=str)) == {"p": "***"}


def test_json_log_lines_stay_valid_json_with_any_password(own_secrets):
    for secret in ("false", "1234", "socket", "kiwi-mango-88"):
        log.register_secret(secret)
    out = io.StringIO()
    log.configure("json", stream=out)
    logger = structlog.get_logger("t")
    logger.info("connected", socket=False, port=1234, detail="password kiwi-mango-88 socket")
    try:
        raise RuntimeError("failed with kiwi-mango-88")
    except RuntimeError:
        logger.exception("boom")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert (first["socket"], first["port"]) == (False, 1234)
    assert first["detail"] == "password *** ***"
    assert "kiwi-mango-88" not in out.getvalue()
    assert second["exception"][0]["exc_value"] == "failed with ***"
    # text for people is still masked as text
    out = io.StringIO()
    log.configure("console", stream=out)
    structlog.get_logger("t").info("connected", socket=False, note="kiwi-mango-88")
    assert "kiwi-mango-88" not in out.getvalue() and "note=***" in out.getvalue()


def test_secret_may_carry_dsn_options():
    base = {"host": "h", "username": "u", "password": "pw-in-secret", "dbname": "d"}
    spec = spec_from_secret(
        json.dumps({**base, "ssl": "Verify_Identity", "ssl_ca": "/ca.pem", "tcp_keepalive": 30}),
        "arn:s",
    )
    assert dict(spec.options) == {
        "ssl": "verify_identity",
        "ssl_ca": "/ca.pem",
        "tcp_keepalive": "30",
    }
    assert spec_from_secret(json.dumps({**base, "engine": "mariadb"}), "arn:s").options == ()
    # a secret for an IAM user has no password; one with both is a contradiction
    iam = {k: v for k, v in base.items() if k != "password"}
    assert dict(spec_from_secret(json.dumps({**iam, "iam": True}), "arn:s").options) == {
        "iam": "true"
    }
    with pytest.raises(ConfigError, match="secret arn:s has a password and iam=true") as e:
        spec_from_secret(json.dumps({**base, "iam": "true"}), "arn:s")
    assert "pw-in-secret" not in str(e.value)
    with pytest.raises(ConfigError, match=r"secret arn:s: DSN option ssl='yes please'") as e:
        spec_from_secret(json.dumps({**base, "ssl": "yes please"}), "arn:s")
    assert "pw-in-secret" not in str(e.value)


def test_a_server_error_no_adapter_handled_is_an_error_line_not_a_traceback(capsys):
    """handle_errors' last net: a PyMySQL exception that reached a command as it was."""
    import pymysql

    from pipeline.cli import handle_errors

    @handle_errors
    def command():
        raise pymysql.err.OperationalError(1290, "--read-only option, password pw-only-here-7")

    log.register_secret("pw-only-here-7")
    with pytest.raises(SystemExit) as e:
        command()
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: database error: 1290 --read-only option") and "hint:" in err
    assert "pw-only-here-7" not in err

    @handle_errors
    def other():
        raise ValueError("not ours to render")

    with pytest.raises(ValueError):
        other()
