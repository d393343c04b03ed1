"""DSNs that cannot be used as written: refused with an error that names what is wrong and
never shows the password, even when the DSN cannot be parsed far enough to find it (pure)."""

from __future__ import annotations

import pytest

from pipeline.db.connect import mask_dsn, parse_dsn
from pipeline.errors import ConfigError

PW = "S3cretPw!x"


def _error(dsn: str) -> str:
    with pytest.raises(ConfigError) as e:
        parse_dsn(dsn)
    assert e.value.exit_code == 2 and e.value.hint
    return str(e.value)


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        (f"app:{PW}@127.0.0.1:3306/shop", "'app:***@127.0.0.1:3306/shop'"),
        (f"mysql//app:{PW}@127.0.0.1:3306/shop", "'mysql//app:***@127.0.0.1:3306/shop'"),
        (f"postgres://app:{PW}@h/shop", "'postgres://app:***@h/shop'"),
        (f"mysq://app:{PW}@h/shop", "'mysq://app:***@h/shop'"),
    ],
)
def test_a_mistyped_scheme_is_named_and_the_password_masked(dsn, shown):
    err = _error(dsn)
    assert f"invalid DSN {shown}: scheme must be mysql:// or mariadb://" in err
    assert "S3cr" not in err


@pytest.mark.parametrize(
    "dsn", [f"mysql:/app:{PW}@host/shop", f"mysql:app:{PW}@host/shop", "mariadb:/app@host/shop"]
)
def test_a_dsn_without_slashes_is_refused_not_read_as_a_database_name(dsn):
    err = _error(dsn)
    assert "no // after" in err and "://user:pass@host:3306/db" in err
    assert "S3cr" not in err


@pytest.mark.parametrize(
    ("password", "pieces"),
    [
        ("S3cr/etPw", ["S3cr", "etPw"]),
        ("S3cr#etPw", ["S3cr", "etPw"]),
        ("S3cr?etPw", ["S3cr", "etPw"]),
        ("S3cr@et/Pw", ["S3cr", "et", "Pw"]),
        # all digits before the /: host app, port 1234, database "etPw@127.0.0.1:3306/shop"
        ("1234/etPw", ["1234", "etPw"]),
        ("56#78", ["56", "78"]),
        ("9?ssl=required", ["9?", "ssl=required"]),
    ],
)
def test_an_unencoded_slash_hash_or_question_mark_in_the_password_leaks_nothing(password, pieces):
    err = _error(f"mysql://app:{password}@127.0.0.1:3306/shop")
    assert err.startswith("invalid DSN 'mysql://app:***@127.0.0.1:3306/shop': ")
    assert "percent-encode / # ? @ : and %" in err and "/ as %2F" in err
    for piece in pieces:
        assert piece not in err
    assert "cast" not in err  # urllib's "Port could not be cast to integer value as 'S3cr'"


def test_a_port_that_is_not_a_number_is_named_without_urllibs_message():
    err = _error("mysql://app:pw@db:33o6/shop")
    assert "the port is not a number" in err and "33o6" in err  # the DSN, shown masked
    assert "mysql://app:***@db:33o6/shop" in err and "cast" not in err


def test_an_unencoded_at_in_the_password_is_read_up_to_the_last_at():
    spec = parse_dsn("mysql://app:S3cr@etPw@127.0.0.1:3306/shop")
    assert (spec.user, spec.password, spec.host) == ("app", "S3cr@etPw", "127.0.0.1")
    # registered as it was parsed: later errors mask it
    err = _error("mysql://app:S3cr@etPw@127.0.0.1:3306/shop?sslmode=on")
    assert "S3cr" not in err


@pytest.mark.parametrize(
    ("dsn", "needle"),
    [
        ("mysql://app:pw-x1@:3306/shop", "has no host: an unset variable?"),
        ("mysql://app:pw-x1@/shop", "has no host"),
        ("mysql://app@/shop", "has no host"),
        ("mysql://:3306/shop", "has no host"),
        ("mysql://:pw-x1@host/shop", "has no user before the '@'"),
        ("mysql://@host/shop", "has no user"),
    ],
)
def test_an_empty_host_or_user_is_an_error_not_a_fallback(dsn, needle):
    err = _error(dsn)
    assert needle in err and "pw-x1" not in err


def test_forms_without_host_or_user_that_mean_the_defaults_still_work():
    assert parse_dsn("mysql://app@db/shop").user == "app"
    spec = parse_dsn("mysql://db/shop")
    assert (spec.user, spec.host, spec.port) == ("root", "db", 3306)
    sock = parse_dsn("mysql:///shop?unix_socket=/run/mysqld/mysqld.sock")
    assert (sock.user, sock.database) == ("root", "shop")
    assert dict(sock.options) == {"unix_socket": "/run/mysqld/mysqld.sock"}
    # the host is not used over a socket
    assert parse_dsn("mysql://app:pw@/shop?unix_socket=/s.sock").user == "app"
    assert parse_dsn("MariaDB://app@db:3307/shop").port == 3307


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("mysql://app:pw@h/db", "mysql://app:***@h/db"),
        ("mysql://app@h/db", "mysql://app@h/db"),
        ("mysql://h/db?ssl_ca=/a@b.pem", "mysql://h/db?ssl_ca=/a@b.pem"),
        ("app:pw@h/db", "app:***@h/db"),
        ("app:pa://ss@h/db", "app:***@h/db"),
        ("mysql:/app:pw@h/db", "mysql:/app:***@h/db"),
        ("mysql:app:pw@h/db", "mysql:app:***@h/db"),
        ("mysql:pw@h/db", "mysql:***@h/db"),  # the user mysql, or the scheme: masked either way
        ("mysql:///app:pw@h", "mysql:///app:***@h"),
        ("mysql://app:p:w@x@h/db", "mysql://app:***@h/db"),
        ("snapshot.json", "snapshot.json"),
    ],
)
def test_mask_dsn(text, masked):
    assert mask_dsn(text) == masked
