"""A password never crosses a network in clear text. A man in the middle who strips TLS from
the server's greeting can ask the client for the password "as it is" (an auth switch to
mysql_clear_password, or to the dialog plugin's password prompt); PyMySQL answers such a
request on any connection. Here a fake server does exactly that, and records what it gets."""

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


def _greeting() -> bytes:
    """MariaDB's protocol-10 greeting, without the SSL capability (what a stripper sends)."""
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
        b"\x0a10.11.6-MariaDB-in-the-middle\0"
        + struct.pack("<I", 7)
        + b"abcdefgh\0"
        + struct.pack("<HBHH", caps & 0xFFFF, 45, 2, caps >> 16)
        + bytes([21])
        + b"\0" * 10
        + b"ijklmnopqrst\0"
        + b"mysql_native_password\0"
    )


class InTheMiddle(threading.Thread):
    """Accepts one connection: greets without TLS, asks for the password in clear text, and
    keeps every byte the client sends after that request; answers it with Access denied."""

    def __init__(self, host: str, switch: bytes) -> None:
        super().__init__(daemon=True)
        self.listener = socket.create_server((host, 0))
        self.port = self.listener.getsockname()[1]
        self.switch = switch
        self.received: bytes = b""  # everything the client sent, handshake response included
        self.answered: bytes | None = None  # what came after the clear-text request

    def run(self) -> None:
        self.listener.settimeout(10)
        conn, _ = self.listener.accept()
        with conn:
            conn.settimeout(10)
            conn.sendall(_packet(0, _greeting()))
            self.received = _read_packet(conn)  # the handshake response
            if not self.received:
                return
            conn.sendall(_packet(2, b"\xfe" + self.switch))
            self.answered = _read_packet(conn)
            self.received += self.answered
            if self.answered:
                conn.sendall(_packet(4, b"\xff" + struct.pack("<H", 1045) + b"#28000denied"))

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
        InTheMiddle("127.0.0.2", PLUGINS[plugin]) as mitm,
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
        InTheMiddle("127.0.0.1", PLUGINS[plugin]) as mitm,
        pytest.raises(DatabaseError, match="denied"),
    ):
        connect(parse_dsn(f"mysql://app:{PASSWORD}@127.0.0.1:{mitm.port}/shop"))
    assert mitm.answered == PASSWORD.encode() + b"\0"


def test_an_iam_token_never_reaches_a_server_without_tls(signing_env):
    dsn = "mysql://app@127.0.0.2:{port}/shop?iam=true&region=eu-west-1"
    with (
        InTheMiddle("127.0.0.2", PLUGINS["mysql_clear_password"]) as mitm,
        pytest.raises(DatabaseError, match="TLS") as e,
    ):
        connect(parse_dsn(dsn.format(port=mitm.port)))
    assert mitm.answered in (None, b"")  # PyMySQL 1.2 stops at the greeting, 1.1 at the guard
    assert b"X-Amz" not in mitm.received and "X-Amz" not in str(e.value)
