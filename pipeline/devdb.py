"""A throwaway MariaDB server for tests, the demo and benchmarks.

Starts Debian's ``mariadbd`` in a temporary directory on 127.0.0.1 and a free port: the
data directory is initialised once into a template (``mariadb-install-db``, ~0.6 s) and
copied for every server (~0.15 s to accept connections on /dev/shm). The server is tuned
for throwaway use (no binlog, no doublewrite, lazy log flush): never for real data.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pymysql

from pipeline.db.connect import ConnectionSpec
from pipeline.errors import ConfigError

INSTALL_HINT = (
    "install MariaDB: apt-get install -y mariadb-server mariadb-client "
    "(or set MARIADB_DSN=mysql://root:pw@host:3306/mysql to use a running server)"
)
_SEARCH = ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin", "/usr/local/mysql/bin")


def _which(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in _SEARCH:
        p = Path(d, name)
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return None


def find_binaries() -> tuple[str, str]:
    """Paths of mariadbd and mariadb-install-db, or a ConfigError that says how to install them."""
    server = _which("mariadbd") or _which("mysqld")
    install = _which("mariadb-install-db") or _which("mysql_install_db")
    if not server or not install:
        raise ConfigError(
            "no MariaDB server binaries (mariadbd) found on this machine", hint=INSTALL_HINT
        )
    return server, install


def scratch_root() -> str:
    """Where throwaway data directories go: $DBROLL_SCRATCH, else /dev/shm, else TMPDIR."""
    if os.environ.get("DBROLL_SCRATCH"):
        Path(os.environ["DBROLL_SCRATCH"]).mkdir(parents=True, exist_ok=True)
        return os.environ["DBROLL_SCRATCH"]
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return str(shm)
    return tempfile.gettempdir()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_template(dest: str | None = None) -> str:
    """Initialise an empty data directory to copy servers from; returns its path."""
    _server, install = find_binaries()
    dest = dest or tempfile.mkdtemp(prefix="dbroll-tmpl-", dir=scratch_root())
    proc = subprocess.run(
        [
            install,
            "--no-defaults",
            f"--datadir={dest}",
            "--user=root",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise ConfigError(
            f"mariadb-install-db failed in {dest}: {proc.stderr.strip()[-500:]}", hint=INSTALL_HINT
        )
    return dest


@dataclass
class MariaDBServer:
    """One running throwaway server; stop() kills it by its own PID and removes its files."""

    datadir: str
    port: int
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def spec(self) -> ConnectionSpec:
        return ConnectionSpec(
            host="127.0.0.1", port=self.port, user="root", password="", database="mysql"
        )

    def dsn(self, database: str = "mysql") -> str:
        return f"mysql://root@127.0.0.1:{self.port}/{database}"

    @classmethod
    def start(
        cls, template: str | None = None, *, timeout: float = 30.0, options: tuple[str, ...] = ()
    ) -> MariaDBServer:
        """Start a server on a free port (`options`: more mariadbd options, e.g. TLS files)."""
        server_bin, _ = find_binaries()
        root = tempfile.mkdtemp(prefix="dbroll-db-", dir=scratch_root())
        datadir = os.path.join(root, "data")
        if template:
            shutil.copytree(template, datadir, symlinks=True)
        else:
            make_template(datadir)
        port = free_port()
        log = os.path.join(root, "err.log")
        proc = subprocess.Popen(
            [
                server_bin,
                "--no-defaults",
                "--user=root",
                f"--datadir={datadir}",
                f"--socket={root}/s.sock",
                f"--port={port}",
                "--bind-address=127.0.0.1",
                f"--pid-file={root}/pid",
                f"--log-error={log}",
                "--skip-name-resolve",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=64M",
                "--innodb-log-file-size=16M",
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-doublewrite=0",
                "--max-connections=300",
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_unicode_ci",
                *options,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        server = cls(datadir=root, port=port, proc=proc)
        deadline = time.monotonic() + timeout
        while True:
            try:
                pymysql.connect(host="127.0.0.1", port=port, user="root", connect_timeout=1).close()
                return server
            except pymysql.MySQLError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = Path(log).read_text(errors="replace")[-800:] if Path(log).exists() else ""
                server.stop()
                raise ConfigError(
                    f"MariaDB did not start on port {port}: {tail}", hint=INSTALL_HINT
                )
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None
        shutil.rmtree(self.datadir, ignore_errors=True)
