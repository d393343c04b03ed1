"""DSN or Secrets Manager secret -> PyMySQL connection.

A DSN looks like ``mysql://user:pass@host:port/db?ssl_ca=/path&ssl=required``
(``mariadb://`` is the same). Query options: ``ssl_ca``, ``ssl_cert``, ``ssl_key``,
``ssl`` (``required`` / ``verify_ca`` / ``verify_identity`` / ``disabled``),
``unix_socket``, ``connect_timeout``, ``charset``. The password is registered with
:mod:`pipeline.log` as soon as it is parsed, so it never appears in any output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pymysql
from pymysql.constants import COMMAND

from pipeline.errors import ConfigError, DatabaseError
from pipeline.log import redact, register_secret

SCHEMES = ("mysql", "mariadb", "mysql+pymysql")
_KNOWN_OPTIONS = {
    "ssl_ca",
    "ssl_cert",
    "ssl_key",
    "ssl",
    "unix_socket",
    "connect_timeout",
    "charset",
}


@dataclass(frozen=True)
class ConnectionSpec:
    host: str = "127.0.0.1"
    port: int = 3306
    user: str = "root"
    password: str = field(default="", repr=False)
    database: str = ""
    options: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        """A printable name for the database: never contains the password."""
        return f"{self.user}@{self.host}:{self.port}/{self.database}"

    def with_database(self, database: str) -> ConnectionSpec:
        return replace(self, database=database)

    def to_dsn(self) -> str:
        """The DSN for this spec (contains the password: for child processes only)."""
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        query = "&".join(f"{k}={quote(v, safe='/')}" for k, v in self.options)
        return f"mysql://{auth}@{self.host}:{self.port}/{self.database}" + (
            f"?{query}" if query else ""
        )


def parse_dsn(dsn: str) -> ConnectionSpec:
    """Parse a mysql:// or mariadb:// DSN. Errors never echo the password."""
    if not dsn:
        raise ConfigError(
            "no database given",
            hint="pass --dsn mysql://user:pass@host:3306/db, set DBROLL_DSN, or use --dsn-secret",
        )
    try:
        parts = urlsplit(dsn)
        port = parts.port
    except ValueError as e:
        raise ConfigError(f"invalid DSN {redact(dsn)!r}: {e}") from None
    if parts.password:
        register_secret(unquote(parts.password))
        register_secret(parts.password)
    if parts.scheme not in SCHEMES:
        raise ConfigError(
            f"invalid DSN {redact(dsn)!r}: scheme must be mysql:// or mariadb://",
            hint="example: mysql://app:secret@db.example.internal:3306/shop",
        )
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise ConfigError(
            f"DSN {redact(dsn)!r} names no database",
            hint="add the schema after the host: mysql://user:pass@host:3306/<database>",
        )
    options: list[tuple[str, str]] = []
    for key, values in sorted(parse_qs(parts.query, keep_blank_values=True).items()):
        if key not in _KNOWN_OPTIONS:
            raise ConfigError(
                f"DSN option {key!r} is not supported",
                hint="supported: " + ", ".join(sorted(_KNOWN_OPTIONS)),
            )
        options.append((key, values[-1]))
    return ConnectionSpec(
        host=parts.hostname or "127.0.0.1",
        port=port or 3306,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        database=database,
        options=tuple(options),
    )


def spec_from_secret(
    secret_string: str, secret_id: str, database: str | None = None
) -> ConnectionSpec:
    """Build a spec from an RDS-style JSON secret {host, port, username, password, dbname}."""
    try:
        data = json.loads(secret_string)
    except json.JSONDecodeError:
        raise ConfigError(
            f"secret {secret_id} is not JSON",
            hint='store an RDS-style secret: {"host", "port", "username", "password", "dbname"}',
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"secret {secret_id} is not a JSON object")
    register_secret(str(data.get("password", "")))
    missing = [k for k in ("host", "username") if not data.get(k)]
    dbname = database or data.get("dbname") or data.get("database")
    if not dbname:
        missing.append("dbname")
    if missing:
        raise ConfigError(
            f"secret {secret_id} lacks {', '.join(missing)}",
            hint="an RDS-style secret has host, port, username, password and dbname",
        )
    options = []
    if data.get("ssl_ca"):
        options.append(("ssl_ca", str(data["ssl_ca"])))
    return ConnectionSpec(
        host=str(data["host"]),
        port=int(data.get("port") or 3306),
        user=str(data["username"]),
        password=str(data.get("password", "")),
        database=str(dbname),
        options=tuple(options),
    )


_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _ssl_kwargs(opts: dict[str, str], host: str = "") -> dict[str, Any]:
    """TLS options for PyMySQL. Without any, PyMySQL tries TLS opportunistically (unverified,
    and building its context costs ~40 ms a connection); on loopback that buys nothing."""
    mode = opts.get("ssl", "").lower()
    kw: dict[str, Any] = {}
    if mode == "disabled" or (
        not mode
        and not any(k in opts for k in ("ssl_ca", "ssl_cert", "ssl_key"))
        and (host in _LOOPBACK or "unix_socket" in opts)
    ):
        return {"ssl_disabled": True}
    for key in ("ssl_ca", "ssl_cert", "ssl_key"):
        if opts.get(key):
            kw[key] = opts[key]
    if mode in ("required", "verify_ca", "verify_identity", "true", "1") or kw:
        kw.setdefault("ssl", {})  # TLS on; verification below
        kw["ssl_verify_cert"] = mode in ("verify_ca", "verify_identity") or "ssl_ca" in kw
        kw["ssl_verify_identity"] = mode == "verify_identity"
    return kw


def connect(
    spec: ConnectionSpec,
    *,
    database: bool = True,
    autocommit: bool = True,
    multi_statements: bool = False,
) -> pymysql.Connection:
    """Open a connection; failures become DatabaseError naming host and database, never the password."""
    opts = dict(spec.options)
    kwargs: dict[str, Any] = dict(
        user=spec.user,
        password=spec.password,
        database=spec.database if database else None,
        charset=opts.get("charset", "utf8mb4"),
        autocommit=autocommit,
        connect_timeout=float(opts.get("connect_timeout", 10)),
        local_infile=False,
    )
    if multi_statements:
        from pymysql.constants import CLIENT

        kwargs["client_flag"] = CLIENT.MULTI_STATEMENTS
    if opts.get("unix_socket"):
        kwargs["unix_socket"] = opts["unix_socket"]
    else:
        kwargs["host"] = spec.host
        kwargs["port"] = spec.port
    kwargs.update(_ssl_kwargs(opts, spec.host))
    try:
        return pymysql.connect(**kwargs)
    except pymysql.MySQLError as e:
        code = e.args[0] if e.args else None
        if code == 1049:
            hint = f"create it first: CREATE DATABASE `{spec.database}`"
        elif code == 1045:
            hint = "check the user and password in the DSN or secret"
        else:
            hint = "check that the server is reachable from here and the DSN is right"
        raise DatabaseError(
            f"cannot connect to {spec.describe()}: {redact(str(e))}", hint=hint
        ) from None


# PyMySQL's Cursor.execute() is four calls: clear the cursor, send the query, read the first
# result, hand it to the cursor. Split in two (send, then read), the caller can do its own
# work while the server runs the statement. PyMySQL has no public API for that, so the two
# halves below are those same calls (PyMySQL 1.1 and 1.2), used only where they exist;
# otherwise send_query runs the whole query and read_result has nothing left to do.
_SPLIT = all(
    hasattr(pymysql.connections.Connection, a) for a in ("_execute_command", "_read_query_result")
) and all(hasattr(pymysql.cursors.Cursor, a) for a in ("_clear_result", "_do_get_result"))


def send_query(cur: Any, sql: str) -> None:
    """Send `sql` (one packet, one or more statements) on `cur`; do not wait for the result.
    Call read_result(cur) next, before anything else uses the connection. (Without the
    split, the query runs here and its error is raised here.)"""
    while cur.nextset():  # what execute() does first: leftovers of the previous query
        pass
    if not _SPLIT:
        cur.execute(sql)
        return
    conn = cur.connection
    cur._clear_result()
    conn._execute_command(COMMAND.COM_QUERY, sql.encode(conn.encoding))
    cur._executed = sql  # fetch*() check that a query was executed


def read_result(cur: Any) -> None:
    """Wait for the first result of the query send_query sent, as execute() would have
    returned it (its error raised, cur.lastrowid and cur.nextset() ready)."""
    if not _SPLIT:
        return
    conn = cur.connection
    conn._affected_rows = conn._read_query_result()
    cur._do_get_result()
