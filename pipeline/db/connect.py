"""DSN or Secrets Manager secret -> PyMySQL connection.

A DSN looks like ``mysql://user:pass@host:port/db?ssl_ca=/path&ssl=required``
(``mariadb://`` is the same). Query options: ``ssl_ca``, ``ssl_cert``, ``ssl_key``,
``ssl`` (``required`` / ``verify_ca`` / ``verify_identity`` / ``disabled``),
``unix_socket``, ``connect_timeout`` (seconds), ``charset``, ``tcp_keepalive`` (seconds; see
below), ``iam`` and ``region`` (see below). Each is checked when the DSN is parsed: a typo
such as ``ssl=requried`` is an error, never a silent downgrade to an unverified or plain
connection. The password is registered with :mod:`pipeline.log` as soon as it is parsed, so
it never appears in any output; a DSN that cannot be parsed that far is shown through
:func:`mask_dsn`. In the user and password, ``/ # ? @ :`` and ``%`` are percent-encoded
(``/`` as ``%2F``). Left out, the user is root and the host 127.0.0.1; but an empty one
(``mysql://app:pw@:3306/db``, ``mysql://:pw@host/db``: an unset variable?) is an error.

IAM database authentication (RDS and Aurora): with ``iam=true`` the DSN carries no password;
each connection signs a token with the AWS credentials dbroll runs with (the task role, the
CodeBuild role) and sends it as the password. The token is good for 15 minutes, so each
connection signs its own. It goes only over TLS (``ssl=required`` unless the DSN says more).

A connection to another machine that ends up in plain text (no ``ssl=`` option, and a server
that offers no TLS) works, with one warning per host and process: statements, results and the
password's challenge-response then cross the network readable. ``ssl=disabled`` says that
is intended, and silences it.

A password never crosses a network in clear text: when a server asks for it that way
(``mysql_clear_password``, or the ``dialog`` plugin's password prompt), or encrypted under an
RSA key it sends itself (MySQL's ``sha256_password``, ``caching_sha2_password``'s full
authentication), over a connection without TLS that is not local, dbroll refuses instead of
answering. A real server does that for PAM or LDAP users or a cold MySQL 8 cache; a man in
the middle who stripped TLS does it to read the password.

TCP keepalive: a long ALTER keeps the connection silent until it ends, and AWS NAT gateways,
Network Load Balancers and Transit Gateways drop a TCP flow after 350 s without a packet.
The client would then wait forever for an answer that cannot arrive. PyMySQL turns
SO_KEEPALIVE on with the kernel's timers (first probe after 2 hours), so dbroll sets them per
connection: first probe after ``tcp_keepalive`` seconds idle (default 60), then every 10 s,
6 unanswered probes end the connection (a lost connection error instead of a hang).
``tcp_keepalive=0`` turns keepalive off.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pymysql
import structlog
from pymysql.constants import COMMAND, CR

from pipeline.errors import ConfigError, DatabaseError
from pipeline.log import MASK, redact, register_secret

log = structlog.get_logger(__name__)

SCHEMES = ("mysql", "mariadb", "mysql+pymysql")
_KNOWN_OPTIONS = {
    "ssl_ca",
    "ssl_cert",
    "ssl_key",
    "ssl",
    "unix_socket",
    "connect_timeout",
    "charset",
    "tcp_keepalive",
    "iam",
    "region",
}
_BOOLEANS = {"true": "true", "1": "true", "false": "false", "0": "false"}
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d+")
# `ssl=` values and what they mean (true/1 and false/0 are accepted spellings)
_SSL_MODES = {
    "required": "required",
    "true": "required",
    "1": "required",
    "verify_ca": "verify_ca",
    "verify_identity": "verify_identity",
    "disabled": "disabled",
    "false": "disabled",
    "0": "disabled",
}
KEEPALIVE_IDLE_S = 60  # under the 350 s idle timeout of AWS NAT gateways, NLBs, Transit Gateways
KEEPALIVE_INTERVAL_S = 10
KEEPALIVE_PROBES = 6
_KEEPIDLE_MAX = 32767  # Linux's limit for TCP_KEEPIDLE
_NO_TLS_HINT = (
    "enable TLS on the server (ssl_cert and ssl_key in its configuration; RDS has it on), or "
    "connect with ssl=disabled where plain text is acceptable (loopback, a test server)"
)
_TLS_HINT = (
    "ssl_ca (and ssl_cert, ssl_key) must be PEM files, and ssl_ca the CA that signed the "
    "server's certificate (RDS: https://truststore.pki.rds.amazonaws.com/global/"
    "global-bundle.pem); with ssl=verify_identity the DSN's host must be a name in that "
    "certificate"
)


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
    """Parse a mysql:// or mariadb:// DSN. Errors never echo the password: one the DSN
    cannot be parsed far enough to find it in is masked by :func:`mask_dsn`."""
    if not dsn:
        raise ConfigError(
            "no database given",
            hint="pass --dsn mysql://user:pass@host:3306/db, set DBROLL_DSN, or use --dsn-secret",
        )
    shown = repr(redact(mask_dsn(dsn)))
    scheme = _SCHEME.match(dsn)
    if scheme is None or scheme[1].lower() not in SCHEMES:
        raise ConfigError(
            f"invalid DSN {shown}: scheme must be mysql:// or mariadb://",
            hint="example: mysql://app:secret@db.example.internal:3306/shop",
        )
    if not scheme[2]:  # urlsplit reads mysql:/u:p@h/db and mysql:u:p@h/db as a database name
        raise ConfigError(
            f"invalid DSN {shown}: no // after {scheme[1]}:",
            hint=f"write {scheme[1]}://user:pass@host:3306/db",
        )
    # urllib's messages can quote the authority, a piece of the password: never shown
    try:
        parts = urlsplit(dsn)
    except ValueError:
        raise ConfigError(
            f"invalid DSN {shown}: its host part cannot be read (an IPv6 address's [ ] "
            "unbalanced?)",
            hint=_ENCODE_HINT,
        ) from None
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(
            f"invalid DSN {shown}: the port is not a number from 0 to 65535",
            hint="write the port as digits (mysql://user:pass@host:3306/db); if it is not "
            "the port, a character in the password ends the host part early: " + _ENCODE_HINT,
        ) from None
    if parts.password:
        register_secret(unquote(parts.password))
        register_secret(parts.password)
    if "@" in dsn[scheme.end() + len(parts.netloc) :]:
        # a / # or ? in the password ended the authority early: the rest is path or query
        raise ConfigError(
            f"invalid DSN {shown}: an '@' after the host (a '/', '#' or '?' in the user or "
            "password ends the host part early)",
            hint=_ENCODE_HINT + ", and an '@' in an option's value as %40",
        )
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise ConfigError(
            f"DSN {shown} names no database",
            hint="add the schema after the host: mysql://user:pass@host:3306/<database>",
        )
    options: list[tuple[str, str]] = []
    for key, values in sorted(parse_qs(parts.query, keep_blank_values=True).items()):
        if key not in _KNOWN_OPTIONS:
            raise ConfigError(
                f"DSN option {key!r} is not supported",
                hint="supported: " + ", ".join(sorted(_KNOWN_OPTIONS)),
            )
        options.append((key, _check_option(key, values[-1])))
    userinfo = "@" in parts.netloc
    if userinfo and not parts.username:  # mysql://${USER}:${PASSWORD}@host/db, both unset
        raise ConfigError(
            f"DSN {shown} has no user before the '@': an unset variable?",
            hint="give the user: mysql://user:pass@host:3306/db (or drop the '@' to log in "
            "as root)",
        )
    # the host is only used over TCP: mysql://u:p@/db?unix_socket=/path is a socket DSN
    if not parts.hostname and (userinfo or port is not None) and "unix_socket" not in dict(options):
        raise ConfigError(
            f"DSN {shown} has no host: an unset variable?",
            hint="give the host: mysql://user:pass@host:3306/db (or ?unix_socket=/path)",
        )
    _check_together(dict(options), bool(parts.password), "DSN")
    return ConnectionSpec(
        host=parts.hostname or "127.0.0.1",
        port=port or 3306,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        database=database,
        options=tuple(options),
    )


_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):(//)?")
_ENCODE_HINT = (
    "percent-encode / # ? @ : and % in the user and password (/ as %2F, # as %23, ? as %3F, "
    "@ as %40, : as %3A, % as %25)"
)
# what mask_dsn takes for the scheme: any one followed by //, or (without //) a mistyped
# mysql: or mysql:/ (`app:pw@h` is a user and a password, not the scheme app:)
_SLASHED_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_BARE_SCHEME = re.compile(r"(?:mysql|mariadb|mysql\+pymysql)\s*:/?", re.I)


def mask_dsn(text: str) -> str:
    """`text` (a DSN, or what was meant as one) with anything that may be a password
    masked, even where it cannot be parsed: what lies between the first ':' after the
    scheme (``mysql://``, ``mysql:/``, ``mysql:``, or none) and the user, and the last '@'.
    """
    at = text.rfind("@")
    if at < 0:
        return text
    scheme = _SLASHED_SCHEME.match(text, 0, at)
    if scheme is None:
        scheme = _BARE_SCHEME.match(text, 0, at)
        if scheme and ":" not in text[scheme.end() : at]:  # `mysql:pw@h`: user mysql?
            scheme = None
    start = scheme.end() if scheme else 0
    colon = text.find(":", start, at)
    if colon < 0:
        return text
    return f"{text[: colon + 1]}{MASK}{text[at:]}"


def _check_option(key: str, value: str) -> str:
    """The option's value as the connection will use it; ConfigError naming the option when
    the value cannot be used. (Option values are paths, names and numbers: never secrets.)"""

    def bad(why: str, hint: str) -> ConfigError:
        return ConfigError(f"DSN option {key}={value!r} is not valid: {why}", hint=hint)

    if key == "ssl":
        mode = _SSL_MODES.get(value.lower())
        if mode is None:
            raise bad(
                "unknown TLS mode",
                "use ssl=required (TLS, not verified), ssl=verify_ca, ssl=verify_identity "
                "(verify with ssl_ca=/path/ca.pem) or ssl=disabled",
            )
        return mode
    if key == "connect_timeout":
        try:
            seconds = float(value)
        except ValueError:
            seconds = -1.0
        if not 0 < seconds < float("inf"):
            raise bad("not a positive number of seconds", "example: connect_timeout=10")
        return value
    if key == "tcp_keepalive":
        if not (value.isascii() and value.isdigit()) or int(value) > _KEEPIDLE_MAX:
            raise bad(
                f"not a whole number of seconds from 0 to {_KEEPIDLE_MAX}",
                f"the default is {KEEPALIVE_IDLE_S} (below the 350 s after which AWS NAT "
                "gateways and load balancers drop an idle connection); 0 turns keepalive off",
            )
        return str(int(value))
    if key == "iam":
        if value.lower() not in _BOOLEANS:
            raise bad("not true or false", "iam=true signs an IAM token instead of a password")
        return _BOOLEANS[value.lower()]
    if key == "region":
        if not _REGION.fullmatch(value):
            raise bad("not an AWS region", "example: region=eu-west-1 (the database's region)")
        return value
    if key == "charset":
        from pymysql.charset import charset_by_name

        if charset_by_name(value) is None:
            raise bad("not a MariaDB character set", "the default is charset=utf8mb4")
        return value
    if key in ("ssl_ca", "ssl_cert", "ssl_key", "unix_socket") and not value:
        raise bad("empty", f"give the path: {key}=/path/to/file, or leave the option out")
    return value


def _check_together(opts: dict[str, str], password: bool, where: str) -> None:
    """Options that contradict each other (or the password) are an error, not a guess."""
    if opts.get("iam") != "true":
        if "region" in opts:
            raise ConfigError(
                f"{where} option region={opts['region']} is only used with iam=true",
                hint="add iam=true to sign an IAM token for this user, or drop region",
            )
        return
    if password:
        raise ConfigError(
            f"{where} has a password and iam=true: with IAM authentication the token is "
            "the password",
            hint="drop the password (mysql://user@host:3306/db?iam=true), or drop iam=true",
        )
    if opts.get("ssl") == "disabled":
        raise ConfigError(
            f"{where} has iam=true and ssl=disabled: an IAM token is only sent over TLS",
            hint="drop ssl=disabled; better, verify the server: "
            "ssl=verify_identity&ssl_ca=/path/global-bundle.pem",
        )
    if "unix_socket" in opts:
        raise ConfigError(
            f"{where} has iam=true and unix_socket: an IAM token is signed for a TCP host and port",
            hint="give the instance's endpoint as the host, and drop unix_socket",
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
    # the DSN's options may sit next to the RDS keys, e.g. "ssl": "verify_identity"
    options = []
    for key in sorted(_KNOWN_OPTIONS & data.keys()):
        if data[key] in (None, ""):
            continue
        try:
            options.append((key, _check_option(key, str(data[key]))))
        except ConfigError as e:
            raise ConfigError(f"secret {secret_id}: {e.message}", hint=e.hint) from None
    _check_together(dict(options), bool(data.get("password")), f"secret {secret_id}")
    return ConnectionSpec(
        host=str(data["host"]),
        port=int(data.get("port") or 3306),
        user=str(data["username"]),
        password=str(data.get("password", "")),
        database=str(dbname),
        options=tuple(options),
    )


_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _ssl_kwargs(opts: dict[str, str], spec: ConnectionSpec) -> dict[str, Any]:
    """TLS options for PyMySQL. Without any, PyMySQL tries TLS opportunistically (unverified,
    and building its context costs ~40 ms a connection); on loopback that buys nothing. With
    any, TLS is required and dbroll builds the context itself: PyMySQL treats ``ssl=required``
    without a CA as "preferred" (plain text when the server offers no TLS) and skips the host
    name check of ``verify_identity`` without a CA file."""
    # an IAM token is a bearer credential for 15 minutes: TLS at least
    mode = opts.get("ssl", "") or ("required" if opts.get("iam") == "true" else "")
    files = any(opts.get(k) for k in ("ssl_ca", "ssl_cert", "ssl_key"))
    if mode == "disabled" or (
        not mode and not files and (spec.host in _LOOPBACK or "unix_socket" in opts)
    ):
        return {"ssl_disabled": True}
    if not mode and not files:
        return {}
    return {"ssl": tls_context(mode or "required", opts, spec)}


def tls_context(mode: str, opts: dict[str, str], spec: ConnectionSpec) -> ssl.SSLContext:
    """The TLS context of a connection that requires TLS. `required` verifies the server's
    certificate only when ssl_ca is given; `verify_ca` always does (against ssl_ca, else the
    system's CAs); `verify_identity` also checks that the DSN's host is named in it."""
    for key in ("ssl_ca", "ssl_cert", "ssl_key"):
        if opts.get(key):
            _check_readable(key, opts[key], spec)
    ca = opts.get("ssl_ca") or None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = mode == "verify_identity"
    ctx.verify_mode = (
        ssl.CERT_REQUIRED if mode in ("verify_ca", "verify_identity") or ca else ssl.CERT_NONE
    )
    # MariaDB's and MySQL's self-made certificates fail Python 3.13's stricter X.509 checks
    ctx.verify_flags &= ~ssl.VERIFY_X509_STRICT
    try:
        if ca:
            ctx.load_verify_locations(cafile=ca)
        elif ctx.verify_mode == ssl.CERT_REQUIRED:
            ctx.load_default_certs()
        if opts.get("ssl_cert"):
            ctx.load_cert_chain(opts["ssl_cert"], keyfile=opts.get("ssl_key") or None)
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"cannot set up TLS for {spec.describe()}: {redact(str(e))}", hint=_TLS_HINT
        ) from None
    return ctx


def connect(
    spec: ConnectionSpec,
    *,
    database: bool = True,
    autocommit: bool = True,
    multi_statements: bool = False,
) -> pymysql.Connection:
    """Open a connection; failures become DatabaseError naming host and database, never the password."""
    opts = dict(spec.options)
    iam = opts.get("iam") == "true"
    password = spec.password
    if iam:
        from pipeline.aws.rds import iam_auth_token

        password = iam_auth_token(spec.host, spec.port, spec.user, opts.get("region"))
        register_secret(password)
    kwargs: dict[str, Any] = dict(
        user=spec.user,
        password=password,
        database=spec.database if database else None,
        charset=opts.get("charset", "utf8mb4"),
        autocommit=autocommit,
        connect_timeout=float(opts.get("connect_timeout", 10)),
        local_infile=False,
        auth_plugin_map=_PLAIN_TEXT_GUARDS,
    )
    if multi_statements:
        from pymysql.constants import CLIENT

        kwargs["client_flag"] = CLIENT.MULTI_STATEMENTS
    if opts.get("unix_socket"):
        kwargs["unix_socket"] = opts["unix_socket"]
    else:
        kwargs["host"] = spec.host
        kwargs["port"] = spec.port
    kwargs.update(_ssl_kwargs(opts, spec))
    tls = "ssl" in kwargs  # TLS required (verified or not)
    try:
        conn = pymysql.connect(**kwargs)
    except pymysql.MySQLError as e:
        code = e.args[0] if e.args else None
        if code == 1049:  # a missing resource: a configuration error (exit 2)
            raise ConfigError(
                f"cannot connect to {spec.describe()}: {redact(str(e))}",
                hint=f"create it first (CREATE DATABASE `{spec.database}`), or check the "
                "database name in the DSN or secret",
            ) from None
        if code == CR.CR_AUTH_PLUGIN_ERR and _NOT_SENT in str(e):
            hint = _NOT_SENT_HINT
        elif code == 1045 and iam:
            hint = _IAM_HINT.format(user=spec.user)
        elif code == 1045:
            hint = "check the user and password in the DSN or secret"
        elif tls and "support" in str(e):  # "SSL is required but the server doesn't support it"
            hint = _NO_TLS_HINT
        elif tls and "SSL" in str(e):
            hint = _TLS_HINT
        else:
            hint = "check that the server is reachable from here and the DSN is right"
        raise DatabaseError(
            f"cannot connect to {spec.describe()}: {redact(str(e))}", hint=hint
        ) from None
    if tls and _tls_socket(conn) is None:
        # PyMySQL 1.1 goes on in plain text when the server offers no TLS
        conn.close()
        raise DatabaseError(
            f"cannot connect to {spec.describe()}: the DSN requires TLS and the server does "
            "not offer it; dbroll closed the connection without using it",
            hint=_NO_TLS_HINT,
        )
    set_keepalive(conn, int(opts.get("tcp_keepalive", KEEPALIVE_IDLE_S)))
    if (
        not tls
        and "ssl" not in opts
        and "unix_socket" not in opts
        and spec.host not in _LOOPBACK
        and _tls_socket(conn) is None
        and spec.host not in _WARNED_PLAIN
    ):
        _WARNED_PLAIN.add(spec.host)
        log.warning(
            "connected in plain text",
            database=spec.describe(),
            detail="the server offers no TLS: statements, results and the password's "
            "challenge-response cross the network readable (an eavesdropper can try to "
            "crack the password offline)",
            hint="enable TLS on the server and add ssl=verify_identity&ssl_ca=/path/ca.pem to "
            "the DSN; or add ssl=disabled to say plain text is intended (no warning then)",
        )
    return conn


_WARNED_PLAIN: set[str] = set()  # hosts warned about in this process


_IAM_HINT = (
    "dbroll signed an IAM token and the server refused it. Check: the instance has IAM "
    "database authentication enabled; the user was made for it (CREATE USER '{user}' "
    "IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'); the role dbroll runs as may "
    "rds-db:connect to arn:aws:rds-db:<region>:<account>:dbuser:<DbiResourceId>/{user}; the "
    "DSN's host is the instance's endpoint (the token is signed for that name, not a CNAME) "
    "and the region is the instance's"
)
_NOT_SENT = "dbroll did not send it"
_NOT_SENT_HINT = (
    "add ssl=required (better: ssl=verify_identity&ssl_ca=/path/ca.pem) to the DSN. A server "
    "asks for the password this way for PAM or LDAP users, or (MySQL 8) when its password "
    "cache is cold; if this one should not, something between dbroll and the server may be "
    "reading it"
)


class _PlainTextGuard:
    """PyMySQL handler for an authentication plugin that hands the password over as it is:
    it refuses unless the connection is TLS or stays on this machine, then lets PyMySQL's
    own code answer. (Given no handler, PyMySQL 1.1 and 1.2 answer a remote plain
    connection.)"""

    plugin = b""
    how = "in clear text"

    def __init__(self, conn: pymysql.Connection) -> None:
        self.conn = conn

    def private(self) -> bool:
        conn = self.conn
        return (
            bool(getattr(conn, "unix_socket", None))
            or conn.host in _LOOPBACK
            or _tls_socket(conn) is not None
        )

    def refuse(self) -> pymysql.err.OperationalError:
        return pymysql.err.OperationalError(
            CR.CR_AUTH_PLUGIN_ERR,
            f"the server asked for the password {self.how} ({self.plugin.decode()}) over a "
            f"connection without TLS; {_NOT_SENT}",
        )

    def authenticate(self, pkt: Any) -> Any:
        if not self.private():
            raise self.refuse()
        return self.conn._process_auth(self.plugin, pkt)  # PyMySQL's answer, no handler


class _ClearPassword(_PlainTextGuard):
    plugin = b"mysql_clear_password"


class _Dialog(_PlainTextGuard):
    plugin = b"dialog"  # MariaDB's PAM plugin: a "Password: " prompt, answered in clear


_UNDER_ITS_KEY = "encrypted under a key the server sends over that same connection"


class _Sha256(_PlainTextGuard):
    """MySQL's sha256_password: without TLS the client encrypts the password with an RSA
    key the server sends, and PyMySQL takes any key, a man in the middle's too."""

    plugin = b"sha256_password"
    how = _UNDER_ITS_KEY


class _CachingSha2(_PlainTextGuard):
    """MySQL 8's caching_sha2_password: its fast path sends a scramble (safe in plain
    text); its full authentication, when the server's cache is cold, is sha256_password's
    RSA exchange. Without TLS, the scramble goes and the full authentication is refused, as
    the mysql client does unless given the server's key."""

    plugin = b"caching_sha2_password"
    how = _UNDER_ITS_KEY

    def authenticate(self, pkt: Any) -> Any:
        conn = self.conn
        if self.private() or not conn.password:
            return conn._process_auth(self.plugin, pkt)
        if pkt.is_auth_switch_request():  # it carries a new salt: answer with the scramble
            from pymysql import _auth

            conn.salt = pkt.read_all()
            if conn.salt.endswith(b"\0"):
                conn.salt = conn.salt[:-1]
            pkt = _auth._roundtrip(conn, _auth.scramble_caching_sha2(conn.password, conn.salt))
        if pkt.is_extra_auth_data() and pkt.get_bytes(1) == b"\x04":  # "full auth needed"
            raise self.refuse()
        return conn._process_auth(self.plugin, pkt)  # "fast auth succeeded": read the OK


_PLAIN_TEXT_GUARDS = {
    "mysql_clear_password": _ClearPassword,
    "dialog": _Dialog,
    "sha256_password": _Sha256,
    "caching_sha2_password": _CachingSha2,
}


def connection_facts(conn: pymysql.Connection, spec: ConnectionSpec) -> dict[str, Any]:
    """How `conn` is protected, as `dbroll status` shows it: the TLS version (None: plain
    text), what of the server's certificate was verified (read from the socket's own TLS
    context: dbroll's, or PyMySQL's opportunistic one), how dbroll logged in, and whether
    it is a unix socket."""
    opts = dict(spec.options)
    sock = _tls_socket(conn)
    tls = sock.version() if sock is not None else None
    if sock is None:
        verified = None
    elif sock.context.check_hostname:
        verified = "certificate and host name"
    elif sock.context.verify_mode == ssl.CERT_REQUIRED:
        verified = "certificate"
    else:
        verified = "nothing"
    if opts.get("iam") == "true":
        auth = "IAM token"
    else:
        auth = "password" if spec.password else "no password"
    return {"tls": tls, "verified": verified, "auth": auth, "socket": "unix_socket" in opts}


def _tls_socket(conn: Any) -> ssl.SSLSocket | None:
    """The connection's socket if TLS is on it (PyMySQL keeps no public handle on it)."""
    sock = getattr(conn, "_sock", None)
    return sock if isinstance(sock, ssl.SSLSocket) else None


def describe_facts(facts: dict[str, Any]) -> str:
    """One line for people: `TLSv1.3, certificate verified; IAM token`."""
    if facts["tls"] is None and facts.get("socket"):
        where = "unix socket (this machine)"
    elif facts["tls"] is None:
        where = "plain text (no TLS)"
    elif facts["verified"] == "nothing":
        where = f"{facts['tls']}, server certificate not verified"
    else:
        where = f"{facts['tls']}, {facts['verified']} verified"
    return f"{where}; {facts['auth']}"


def _check_readable(key: str, path: str, spec: ConnectionSpec) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise ConfigError(
            f"DSN option {key}={path} for {spec.describe()}: cannot read it ({e.strerror})",
            hint="the path is read where dbroll runs (in a task: inside the container); for "
            "RDS, download https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem",
        ) from None


def set_keepalive(conn: pymysql.Connection, idle_s: int) -> None:
    """Probe a silent TCP connection after `idle_s` seconds (0: no keepalive), so a middlebox
    does not drop it during a long statement and a vanished server is noticed (see the module
    docstring). Unix sockets are left alone."""
    sock = getattr(conn, "_sock", None)  # PyMySQL keeps no public handle on its socket
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1 if idle_s else 0)
    if not idle_s:
        return
    # Linux names the idle timer TCP_KEEPIDLE, macOS TCP_KEEPALIVE
    idle = getattr(socket, "TCP_KEEPIDLE", None) or getattr(socket, "TCP_KEEPALIVE", None)
    for opt, value in (
        (idle, idle_s),
        (getattr(socket, "TCP_KEEPINTVL", None), min(KEEPALIVE_INTERVAL_S, idle_s)),
        (getattr(socket, "TCP_KEEPCNT", None), KEEPALIVE_PROBES),
    ):
        if opt is not None:
            sock.setsockopt(socket.IPPROTO_TCP, opt, value)


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
