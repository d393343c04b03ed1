"""A password never crosses a network in clear text. A man in the middle who strips TLS from
the server's greeting can ask the client for the password "as it is" (an auth switch to
mysql_clear_password, or to the dialog plugin's password prompt), or encrypted under an RSA
key of his own (MySQL 8's plugins); PyMySQL answers such requests on any connection. Here a
fake server does exactly that, and records what it gets."""

from __future__ import annotations

import socket
import struct
import threading

import pytest

from pipeline.db.connect import connect, parse_dsn
from pipeline.errors import DatabaseError

PASSWORD = "Tr0ub4dor&3-never-in-clear"
PLUGINS = {
    # auth switch payloads: plugin name, then what the plugin sends first
    "mysql_clear_password": b"mysql_clear_password\0",
    "dialog": b"dialog\0" + bytes([0x05]) + b"Password: ",  # a password question, the last
}


def _packet(seq: int, payload: bytes) -> bytes:
    return struct.pack("<I", len(payload))[:3] + bytes([seq]) + payload


def _read_packet(conn: socket.socket) -> bytes:
    """The next packet's payload; b"" once the client hung up (a close with its COM_QUIT
    still unread arrives as a reset)."""
    try:
        head = b""
        while len(head) < 4:
            chunk = conn.recv(4 - len(head))
            if not chunk:
                return b""
            head += chunk
        size = int.from_bytes(head[:3], "little")
        body = b""
        while len(body) < size:
            chunk = conn.recv(size - len(body))
            if not chunk:
                break
            body += chunk
        return body
    except ConnectionResetError:
        return b""


SALT = b"abcdefghijklmnopqrst"  # the 20 bytes of the greeting's challenge
OK = b"\x00\x00\x00\x02\x00\x00\x00"  # OK packet: no rows, autocommit on
DENIED = b"\xff" + struct.pack("<H", 1045) + b"#28000denied"


def _greeting(plugin: bytes, version: bytes) -> bytes:
    """A protocol-10 greeting without the SSL capability (what a stripper sends)."""
    from pymysql.constants import CLIENT

    caps = (
        CLIENT.LONG_PASSWORD
        | CLIENT.CONNECT_WITH_DB
        | CLIENT.PROTOCOL_41
        | CLIENT.TRANSACTIONS
        | CLIENT.SECURE_CONNECTION
        | CLIENT.PLUGIN_AUTH
        | CLIENT.PLUGIN_AUTH_LENENC_CLIENT_DATA
    )
    return (
        b"\x0a"
        + version
        + b"-in-the-middle\0"
        + struct.pack("<I", 7)
        + SALT[:8]
        + b"\0"
        + struct.pack("<HBHH", caps & 0xFFFF, 45, 2, caps >> 16)
        + bytes([21])
        + b"\0" * 10
        + SALT[8:]
        + b"\0"
        + plugin
        + b"\0"
    )


class InTheMiddle(threading.Thread):
    """Accepts one connection and greets it without TLS, naming `plugin`; then sends each
    packet of `asks`, keeping what the client answers (b"" once it hangs up). Then it sends
    `then` (Access denied; or the end of a login) and, with `serve`, answers every query
    with OK until the client hangs up, as a real server would."""

    def __init__(
        self,
        host: str,
        asks: list[bytes],
        *,
        plugin: bytes = b"mysql_native_password",
        version: bytes = b"10.11.6-MariaDB",
        then: tuple[bytes, ...] = (DENIED,),
        serve: bool = False,
    ) -> None:
        super().__init__(daemon=True)
        self.listener = socket.create_server((host, 0))
        self.port = self.listener.getsockname()[1]
        self.asks, self.plugin, self.version = asks, plugin, version
        self.then, self.serve = then, serve
        self.received: bytes = b""  # everything the client sent, handshake response included
        self.answers: list[bytes] = []  # what it sent back to each of `asks`

    @property
    def answered(self) -> bytes | None:
        """What the client sent back to the first ask (None: it was never asked)."""
        return self.answers[0] if self.answers else None

    def run(self) -> None:
        self.listener.settimeout(10)
        conn, _ = self.listener.accept()
        with conn:
            conn.settimeout(10)
            conn.sendall(_packet(0, _greeting(self.plugin, self.version)))
            self.received = _read_packet(conn)  # the handshake response
            if not self.received:
                return
            seq = 2
            for ask in self.asks:
                conn.sendall(_packet(seq, ask))
                answer = _read_packet(conn)
                self.answers.append(answer)
                self.received += answer
                if not answer:
                    return
                seq += 2
            for packet in self.then:
                conn.sendall(_packet(seq, packet))
                seq += 1
            while self.serve and _read_packet(conn):  # queries, until the client hangs up
                conn.sendall(_packet(1, OK))

    def __enter__(self) -> InTheMiddle:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.join(15)
        self.listener.close()


@pytest.mark.parametrize("plugin", sorted(PLUGINS))
def test_a_remote_plain_connection_does_not_send_the_password(plugin):
    # 127.0.0.2 is this machine too, but not a name dbroll counts as loopback: it stands
    # for any remote host
    with (
        InTheMiddle("127.0.0.2", [b"\xfe" + PLUGINS[plugin]]) as mitm,
        pytest.raises(DatabaseError, match="in clear text") as e,
    ):
        connect(parse_dsn(f"mysql://app:{PASSWORD}@127.0.0.2:{mitm.port}/shop"))
    assert mitm.answered == b""  # asked, and given nothing
    assert PASSWORD.encode() not in mitm.received
    assert plugin in str(e.value) and "ssl=required" in e.value.hint
    assert PASSWORD not in str(e.value) + e.value.hint


@pytest.mark.parametrize("plugin", sorted(PLUGINS))
def test_on_loopback_the_password_is_sent_as_asked(plugin):
    """Nothing crosses a network there (a local PAM user works); this also shows the fake
    server gets the password when nothing stops it."""
    with (
        InTheMiddle("127.0.0.1", [b"\xfe" + PLUGINS[plugin]]) as mitm,
        pytest.raises(DatabaseError, match="denied"),
    ):
        connect(parse_dsn(f"mysql://app:{PASSWORD}@127.0.0.1:{mitm.port}/shop"))
    assert mitm.answered == PASSWORD.encode() + b"\0"


def test_an_iam_token_never_reaches_a_server_without_tls(signing_env):
    dsn = "mysql://app@127.0.0.2:{port}/shop?iam=true&region=eu-west-1"
    with (
        InTheMiddle("127.0.0.2", [b"\xfe" + PLUGINS["mysql_clear_password"]]) as mitm,
        pytest.raises(DatabaseError, match="TLS") as e,
    ):
        connect(parse_dsn(dsn.format(port=mitm.port)))
    assert mitm.answered in (None, b"")  # PyMySQL 1.2 stops at the greeting, 1.1 at the guard
    assert b"X-Amz" not in mitm.received and "X-Amz" not in str(e.value)


# MySQL 8's plugins: without TLS the password goes encrypted under an RSA key the server
# sends, and the client takes any key: a man in the middle sends his own


@pytest.fixture(scope="module")
def rsa_key():
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _decrypt(key, sealed: bytes) -> bytes:
    """What the man in the middle reads: the password (XORed with the salt, NUL-ended)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    mixed = key.decrypt(sealed, oaep)
    return bytes(b ^ SALT[i % len(SALT)] for i, b in enumerate(mixed))


def _full_auth(key) -> list[bytes]:
    """caching_sha2_password, cache cold: "full authentication needed", then the key."""
    return [b"\x01\x04", b"\x01" + _pem(key)]


def test_mysql8_full_authentication_does_not_send_the_password_to_a_remote_plain_server(rsa_key):
    mysql8 = {"plugin": b"caching_sha2_password", "version": b"8.0.36"}
    with (
        InTheMiddle("127.0.0.2", _full_auth(rsa_key), **mysql8) as mitm,
        pytest.raises(DatabaseError, match="encrypted under a key the server sends") as e,
    ):
        connect(parse_dsn(f"mysql://app:{PASSWORD}@127.0.0.2:{mitm.port}/shop"))
    assert mitm.answers == [b""]  # not even the request for the key
    assert "caching_sha2_password" in str(e.value) and "ssl=required" in e.value.hint
    # on loopback PyMySQL runs the exchange, and the key's owner reads the password: what
    # the refusal above keeps from a man in the middle
    with (
        InTheMiddle("127.0.0.1", _full_auth(rsa_key), **mysql8) as local,
        pytest.raises(DatabaseError, match="denied"),
    ):
        connect(parse_dsn(f"mysql://app:{PASSWORD}@127.0.0.1:{local.port}/shop"))
    assert local.answers[0] == b"\x02"  # "send me your key"
    assert _decrypt(rsa_key, local.answers[1]) == PASSWORD.encode() + b"\0"


def test_mysql8_full_authentication_after_an_auth_switch_is_refused_too(rsa_key):
    """A greeting that names mysql_native_password, then a switch to caching_sha2_password
    with a new salt: dbroll answers with the scramble, then refuses the full auth."""
    switch = b"\xfe" + b"caching_sha2_password\0" + SALT + b"\0"
    with (
        InTheMiddle("127.0.0.2", [switch, *_full_auth(rsa_key)], version=b"8.0.36") as mitm,
        pytest.raises(DatabaseError, match="encrypted under a key"),
    ):
        connect(parse_dsn(f"mysql://app:{PASSWORD}@127.0.0.2:{mitm.port}/shop"))
    scramble, after = mitm.answers
    assert len(scramble) == 32 and after == b""  # a SHA-256 scramble, then nothing


def test_mysql8_fast_authentication_still_works_without_tls():
    """A warm cache: the client's scramble is enough, nothing secret crosses."""
    with InTheMiddle(
        "127.0.0.2",
        [],  # the handshake response carried the scramble
        plugin=b"caching_sha2_password",
        version=b"8.0.36",
        then=(b"\x01\x03", OK),  # "fast auth succeeded", then OK
        serve=True,
    ) as server:
        conn = connect(parse_dsn(f"mysql://app:{PASSWORD}@127.0.0.2:{server.port}/shop"))
        conn.close()
    assert server.received and PASSWORD.encode() not in server.received


def test_sha256_password_does_not_send_the_password_to_a_remote_plain_server(rsa_key):
    """sha256_password without TLS: the client asks for the key in its first answer."""
    with (
        InTheMiddle(
            "127.0.0.2", [b"\x01" + _pem(rsa_key)], plugin=b"sha256_password", version=b"8.0.36"
        ) as mitm,
        pytest.raises(DatabaseError, match="encrypted under a key") as e,
    ):
        connect(parse_dsn(f"mysql://app:{PASSWORD}@127.0.0.2:{mitm.port}/shop"))
    assert mitm.answers == [b""] and "sha256_password" in str(e.value)


@pytest.mark.parametrize(
    ("host", "options", "warned"),
    [("127.0.0.2", "", True), ("127.0.0.2", "?ssl=disabled", False), ("127.0.0.1", "", False)],
)
def test_a_remote_connection_in_plain_text_is_named_once(host, options, warned, monkeypatch):
    """No ssl= option and a server without TLS: it works, with one warning per host and
    process; ssl=disabled says plain text is intended; loopback never leaves the machine."""
    from structlog.testing import capture_logs

    from pipeline.db import connect as connect_module

    monkeypatch.setattr(connect_module, "_WARNED_PLAIN", set())
    logs = []
    for _ in range(2):
        with InTheMiddle(host, [], then=(OK,), serve=True) as server:
            dsn = f"mysql://app:{PASSWORD}@{host}:{server.port}/shop{options}"
            with capture_logs() as captured:
                connect(parse_dsn(dsn)).close()
            logs += [e for e in captured if e["event"] == "connected in plain text"]
    assert len(logs) == (1 if warned else 0), logs
    if warned:
        assert logs[0]["log_level"] == "warning" and logs[0]["database"].startswith("app@")
        assert "ssl=verify_identity" in logs[0]["hint"]
        assert PASSWORD not in repr(logs[0])
