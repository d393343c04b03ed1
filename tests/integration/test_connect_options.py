"""DSN options on a real connection: TCP keepalive armed on every connection dbroll opens
(a long ALTER must not sit on a connection that a NAT gateway or load balancer drops after
350 s of silence), and TLS settings that cannot be honoured refused with a clear error."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from pipeline import log
from pipeline.db.connect import KEEPALIVE_IDLE_S, connect, parse_dsn
from pipeline.errors import DatabaseError
from tests.conftest import (
    REPO,
    args,
    db_user,
    dbroll,
    query,
    slow_files,
    wait_until_running,
    write_files,
)

SHOP = REPO / "examples" / "shop" / "migrations"

USER_HZ = os.sysconf("SC_CLK_TCK")  # /proc/net/tcp's timers are in these ticks


def _keepalive(sock: socket.socket) -> tuple[int, int, int, int]:
    return (
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
        sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
        sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
        sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
    )


def _with_options(spec, query_string: str):
    return parse_dsn(spec.to_dsn().split("?")[0] + "?" + query_string)


def test_every_connection_probes_after_a_minute_idle(db):
    conn = connect(db)
    try:
        assert _keepalive(conn._sock) == (1, KEEPALIVE_IDLE_S, 10, 6)
        assert conn.cursor().execute("SELECT 1") == 1  # still a working connection
    finally:
        conn.close()


def test_tcp_keepalive_option_sets_the_idle_time_or_turns_it_off(db):
    conn = connect(_with_options(db, "tcp_keepalive=15"))
    try:
        assert _keepalive(conn._sock) == (1, 15, 10, 6)
    finally:
        conn.close()
    conn = connect(_with_options(db, "tcp_keepalive=5"))
    try:
        assert _keepalive(conn._sock)[1:3] == (5, 5)  # probes no further apart than the idle
    finally:
        conn.close()
    conn = connect(_with_options(db, "tcp_keepalive=0"))
    try:
        assert _keepalive(conn._sock)[0] == 0
    finally:
        conn.close()


def _tcp_timers(pid: int) -> dict[int, tuple[int, int]]:
    """The process's TCP sockets (by inode): (timer kind, ticks until it fires), as the
    kernel shows them in /proc/net/tcp{,6}; timer kind 2 is the keepalive timer."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    timers = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            kind, when = f[5].split(":")
            if f[3] == "01" and int(f[9]) in inodes:  # 01: ESTABLISHED
                timers[int(f[9])] = (int(kind, 16), int(when, 16))
    return timers


def test_a_runner_waiting_on_a_long_statement_has_keepalive_armed(db, tmp_path):
    """Seen from the kernel, not from our code: while `dbroll migrate` waits for a slow
    statement, each of its connections to the server has a keepalive timer due within a
    minute (the kernel's own default would be two hours)."""
    mdir = write_files(tmp_path / "m", slow_files(2))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "migrate", *args(db, mdir)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_running(db, proc, "CREATE TABLE slow_1 %")
        timers = _tcp_timers(proc.pid)
    finally:
        proc.kill()
        proc.communicate()
    assert len(timers) >= 2, timers  # the control connection and the one running the packet
    for kind, when in timers.values():
        assert kind == 2 and when <= KEEPALIVE_IDLE_S * USER_HZ, timers


def test_tls_required_but_not_offered_is_refused(db, mariadb):
    """ssl=required against a server without TLS is an error, whichever PyMySQL (1.1 would
    fall back to plain text silently); with TLS on the server it is a TLS connection."""
    (have_ssl,) = query(db, "SELECT @@have_ssl")[0]
    spec = _with_options(db, "ssl=required")
    if have_ssl == "YES":
        conn = connect(spec)
        try:
            assert query(spec, "SHOW SESSION STATUS LIKE 'Ssl_cipher'")[0][1]
        finally:
            conn.close()
        return
    with pytest.raises(DatabaseError) as e:
        connect(spec)
    assert "TLS" in str(e.value) or "SSL" in str(e.value)
    assert "ssl" in e.value.hint
    if spec.password:
        assert spec.password not in str(e.value) + e.value.hint


def test_snapshot_diff_exits_2_when_a_database_cannot_be_read(db, tmp_path):
    """As its --help says: 2 when A or B cannot be read (a wrong password, no such
    database, no server), naming the side; never the password."""
    wrong = replace(db, password="wrong-pw-4711")
    gone = db.with_database(db.database + "_gone")
    nobody = replace(db, host="127.0.0.1", port=_closed_port())
    for a, b, side in ((db, wrong, "B"), (gone, db, "A"), (db, nobody, "B")):
        r = dbroll("snapshot", "diff", a.to_dsn(), b.to_dsn())
        assert r.exit_code == 2, r.stderr
        assert r.stderr.startswith(f"Error: cannot read {side}: cannot connect to "), r.stderr
        assert "hint:" in r.stderr and "wrong-pw-4711" not in r.stderr + r.stdout
        if db.password:
            assert db.password not in r.stderr + r.stdout
    # neither a file nor a DSN: a DSN without its scheme, the password masked
    r = dbroll("snapshot", "diff", "app:S3cretPw!x@127.0.0.1:3306/shop", db.to_dsn())
    assert r.exit_code == 2
    assert "cannot read A (app:***@127.0.0.1:3306/shop): No such file" in r.stderr
    assert "S3cretPw" not in r.stderr


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the test connects


def test_json_results_stay_json_whatever_the_password(mariadb, db, monkeypatch):
    """A password such as `false` must not replace JSON's false ("socket": ***)."""
    monkeypatch.setattr(log, "_SECRETS", set(log._SECRETS))  # false: for this test only
    monkeypatch.setattr(log, "_BY_LENGTH", list(log._BY_LENGTH))
    with db_user(mariadb, db, "false") as spec:
        r = dbroll("status", "--json", "--dsn", spec.to_dsn(), "--migrations", str(SHOP))
    assert r.exit_code == 0, r.stderr
    assert r.json["connection"]["socket"] is False
    assert r.json["database"] == spec.describe()
