"""The work connection lost mid-statement, the way a NAT gateway or load balancer that drops a
flow loses it: the client's side of the path is cut while the server's side stays open, so
the server finishes the statement (and the rest of its packet) for nobody. The runner cannot
know what the server did: it must not write `failed` over the server's own record, and the
next runner must carry on from that record."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.conftest import (
    REPO,
    args,
    history_rows,
    query,
    run_cli,
    slow_create,
    user_tables,
    wait_until_running,
    write_files,
)

# statement by statement (it has DML); its third statement is slow, its fourth must follow it
MIXED = {
    "V1__mixed.sql": "CREATE TABLE t (id INT PRIMARY KEY);\n"
    "INSERT INTO t VALUES (1);\n"
    + slow_create("big", 1_000_000)
    + "ALTER TABLE t ADD COLUMN c INT NOT NULL DEFAULT 7;\n"
}


class _Pair:
    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client, self.upstream = client, upstream
        self.cut = False


class DroppingProxy:
    """A TCP proxy in front of the test server that can drop the client's side of one
    connection and keep the server's side open, discarding what the server sends."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.pairs: list[_Pair] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            pair = _Pair(client, socket.create_connection(self.target))
            self.pairs.append(pair)
            for src, dst in ((client, pair.upstream), (pair.upstream, client)):
                threading.Thread(target=self._pump, args=(pair, src, dst), daemon=True).start()

    def _pump(self, pair: _Pair, src: socket.socket, dst: socket.socket) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            if pair.cut and dst is pair.client:
                continue  # the server's answer goes nowhere
            try:
                dst.sendall(data)
            except OSError:
                break
        if not (pair.cut and src is pair.client):
            for s in (pair.client, pair.upstream):  # one side closed: close the other
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self, pair: _Pair) -> None:
        """Drop the client's side of `pair`; the server's side stays open."""
        pair.cut = True
        pair.client.shutdown(socket.SHUT_RDWR)
        pair.client.close()

    @staticmethod
    def hang_up(pair: _Pair) -> None:
        """Close the server's side of a cut connection (shutdown first: a close alone does not
        end a socket another thread is blocked reading)."""
        with contextlib.suppress(OSError):
            pair.upstream.shutdown(socket.SHUT_RDWR)
        pair.upstream.close()

    def close(self) -> None:
        self.listener.close()
        for p in self.pairs:
            for s in (p.client, p.upstream):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)  # wakes the pump blocked on it
                s.close()


def _start(dsn: str, mdir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "migrate", "--dsn", dsn, "--migrations", str(mdir)],
        cwd=REPO,
        env=dict(os.environ, DBROLL_LOG_FORMAT="json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _session_running(spec, like: str) -> int:
    """The connection id of the session that runs a statement LIKE `like`."""
    ((conn_id,),) = query(
        spec,
        "SELECT id FROM information_schema.processlist WHERE db = %s AND info LIKE %s",
        (spec.database, like),
    )
    return conn_id


def _wait_idle(spec, conn_id: int) -> None:
    """Until the session has nothing left to run (its packet done), or is gone."""
    deadline = time.monotonic() + 60
    while query(
        spec,
        "SELECT 1 FROM information_schema.processlist WHERE id = %s AND command <> 'Sleep'",
        (conn_id,),
    ):
        assert time.monotonic() < deadline, f"session {conn_id} still busy after 60 s"
        time.sleep(0.02)


def _cut_while_running(
    db, mdir: Path, like: str, side: str = "work"
) -> subprocess.CompletedProcess:
    """Run `dbroll migrate` through the proxy and, while the server runs a statement LIKE
    `like`, cut one of its two connections: `work` (the one running it) or `control`. The
    session running the statement is left to finish its packet; then the cut connection's
    server side is closed (as the middlebox's idle timeout would, in the end)."""
    proxy = DroppingProxy(db.host, db.port)
    try:
        # through the proxy, which listens on loopback
        proc = _start(dataclasses.replace(db, host="127.0.0.1", port=proxy.port).to_dsn(), mdir)
        try:
            wait_until_running(db, proc, like)
            conn_id = _session_running(db, like)
            # the runner opens its control connection first, the work connection when it
            # has a statement to run (the server's view of client ports is no guide: a
            # Docker port mapping changes them)
            control, work = proxy.pairs
            pair = work if side == "work" else control
            proxy.cut(pair)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        _wait_idle(db, conn_id)
        proxy.hang_up(pair)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    finally:
        proxy.close()


def _migrate(db, mdir: Path, *more: str) -> subprocess.CompletedProcess:
    """`dbroll migrate` straight to the server (not through the proxy)."""
    return run_cli("migrate", *args(db, mdir, *more))


def test_lost_mid_packet_leaves_the_servers_record_and_the_next_run_finds_it_done(db, tmp_path):
    """DDL-only migrations go in one packet: the server runs all three after the client is
    gone and records each as it goes. The lost runner says so, and writes nothing over it."""
    mdir = write_files(
        tmp_path / "m",
        {f"V{v}__slow{v}.sql": slow_create(f"slow_{v}", 1_000_000) for v in (1, 2, 3)},
    )
    done = _cut_while_running(db, mdir, "CREATE TABLE slow_1 %")
    assert done.returncode == 1, done.stderr
    assert "lost the connection" in done.stderr and "unknown" in done.stderr, done.stderr
    assert "dbroll resume" in done.stderr
    assert user_tables(db) == {"slow_1", "slow_2", "slow_3"}
    assert [r[:3] for r in history_rows(db)] == [
        ("1", "migrate", "success"),
        ("2", "migrate", "success"),
        ("3", "migrate", "success"),
    ]
    again = _migrate(db, mdir)
    assert again.returncode == 0, again.stderr
    assert len(history_rows(db)) == 3


def test_lost_mid_statement_is_resumed_from_the_servers_record(db, tmp_path):
    """A migration with DML runs statement by statement: the server finishes the slow
    statement, and its `done` mark, which would have gone with the next statement, is never
    written. The row stays `running`; the next start with --resume-interrupted reruns that
    statement, finds its effect there, counts it done and goes on."""
    mdir = write_files(tmp_path / "m", MIXED)
    done = _cut_while_running(db, mdir, "CREATE TABLE big %")
    assert done.returncode == 1, done.stderr
    assert "lost the connection" in done.stderr and "statement 3 of 4" in done.stderr
    assert user_tables(db) == {"t", "big"}
    ((version, kind, status),) = [r[:3] for r in history_rows(db)]
    assert (version, kind, status) == ("1", "migrate", "running")
    assert query(db, "SELECT statements_done FROM dbroll_history") == [(2,)]

    blocked = _migrate(db, mdir)
    assert blocked.returncode == 3, blocked.stderr
    assert "--resume-interrupted" in blocked.stderr

    resumed = _migrate(db, mdir, "--resume-interrupted")
    assert resumed.returncode == 0, resumed.stderr
    assert "statement already in effect" in resumed.stderr
    assert query(db, "SELECT id, c FROM t") == [(1, 7)]
    assert [r[2] for r in history_rows(db)] == ["running", "success"]


def test_lost_in_a_transaction_is_run_again_whole(db, tmp_path):
    """A DML-only migration runs in one transaction, its success mark inside it. Cut off
    before COMMIT, the server rolls it back once the session ends; the row stays `running`
    at statement 0 and --resume-interrupted runs the whole transaction again."""
    mdir = write_files(
        tmp_path / "m",
        {
            "V1__t.sql": "CREATE TABLE t (id INT PRIMARY KEY, h CHAR(32));\n",
            "V2__fill.sql": "INSERT INTO t SELECT seq, MD5(seq) FROM seq_1_to_1000000;\n"
            "UPDATE t SET h = 'x' WHERE id = 1;\n",
        },
    )
    done = _cut_while_running(db, mdir, "INSERT INTO t SELECT %")
    assert done.returncode == 1, done.stderr
    assert "whether its transaction committed is unknown" in done.stderr, done.stderr
    assert query(db, "SELECT COUNT(*) FROM t") == [(0,)]
    assert [r[:4] for r in history_rows(db)] == [
        ("1", "migrate", "success", 1),
        ("2", "migrate", "running", 0),
    ]
    resumed = _migrate(db, mdir, "--resume-interrupted")
    assert resumed.returncode == 0, resumed.stderr
    assert query(db, "SELECT COUNT(*), SUM(h = 'x') FROM t") == [(1_000_000, 1)]


def test_lost_control_connection_is_an_error_and_the_record_is_resumable(db, tmp_path):
    """The control connection (the runner lock, history writes deferred to it) cut while the
    other runs a slow statement: the migration goes on to its end, its last mark cannot be
    written, and the runner says so in an error, not a traceback."""
    mdir = write_files(tmp_path / "m", MIXED)
    done = _cut_while_running(db, mdir, "CREATE TABLE big %", side="control")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "lost the connection to" in done.stderr, done.stderr
    assert query(db, "SELECT id, c FROM t") == [(1, 7)]  # every statement ran
    assert [r[:4] for r in history_rows(db)] == [("1", "migrate", "running", 3)]

    resumed = _migrate(db, mdir, "--resume-interrupted")
    assert resumed.returncode == 0, resumed.stderr
    assert "statement already in effect" in resumed.stderr
    assert [r[2] for r in history_rows(db)] == ["running", "success"]
