"""A throwaway PostgreSQL 15 cluster with asyncrr preloaded, for the tests.

Done as test/lib.sh does it: initdb and postgres refuse to run as root, so
when the tests run as root the cluster is made and run by the ``postgres``
OS user (``runuser -u postgres --``), in a temporary directory it owns.
The server listens on a free loopback port and on a socket in that
directory; its log is ``<dir>/server.log``.
"""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time

import psycopg

PGBIN = os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin")


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """``Cluster(dbname).start()``: initdb, configure, start, create the
    database and ``CREATE EXTENSION asyncrr`` in it; ``stop()`` removes it
    all.  ``dsn`` connects as the superuser ``postgres`` over TCP."""

    def __init__(self, dbname: str = "asyncrr_test", settings=None):
        self.dbname = dbname
        self.settings = dict(settings or {})
        self.work = None
        self.port = None
        self.as_root = os.geteuid() == 0

    @property
    def data(self) -> str:
        return os.path.join(self.work, "data")

    @property
    def log(self) -> str:
        return os.path.join(self.work, "server.log")

    def dsn(self, dbname=None, user="postgres", **extra) -> str:
        parts = {"host": "127.0.0.1", "port": self.port, "dbname": dbname or self.dbname,
                 "user": user, **extra}
        return " ".join(f"{k}={v}" for k, v in parts.items())

    def _run(self, *cmd, check=True):
        if self.as_root:
            cmd = ("runuser", "-u", "postgres", "--") + cmd
        return subprocess.run(cmd, cwd=self.work, check=check, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)

    def start(self) -> "Cluster":
        self.work = tempfile.mkdtemp(prefix="asyncrr-python.")
        if self.as_root:
            pg = pwd.getpwnam("postgres")
            os.chown(self.work, pg.pw_uid, pg.pw_gid)
        self._run(f"{PGBIN}/initdb", "-D", self.data, "-U", "postgres", "-A", "trust",
                  "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.work}'",
            "shared_preload_libraries": "'asyncrr'",
            "asyncrr.database": f"'{self.dbname}'",
            "asyncrr.precision": "'50ms'",
            "asyncrr.orphan_grace": "'1s'",
            "fsync": "off",          # a throwaway cluster: spare the shared disk
            "max_connections": "60",
        }
        conf.update(self.settings)
        for attempt in range(5):
            self.port = free_port()
            with open(os.path.join(self.data, "postgresql.auto.conf"), "a") as f:
                f.write(f"port = {self.port}\n")
                for k, v in conf.items():
                    f.write(f"{k} = {v}\n")
            r = self._run(f"{PGBIN}/pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "30",
                          "start", check=False)
            if r.returncode == 0:
                break
            if attempt == 4:
                raise RuntimeError(f"could not start the cluster: {r.stdout}\n{self.log_tail()}")
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.dbname}"')
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION asyncrr")
            # The background worker and the dispatcher find the extension
            # within a second or so.
            until = time.monotonic() + 20
            while True:
                n = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
                    " AND backend_type IN ('asyncrr worker', 'asyncrr dispatcher')",
                    (self.dbname,)).fetchone()[0]
                if n >= 2:
                    break
                if time.monotonic() > until:
                    raise RuntimeError("the asyncrr background worker did not start\n"
                                       + self.log_tail())
                time.sleep(0.1)
        return self

    def log_tail(self, lines: int = 40) -> str:
        try:
            with open(self.log) as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no server log)"

    def stop(self) -> None:
        if self.work is None:
            return
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            self._run(f"{PGBIN}/pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop",
                      check=False)
        shutil.rmtree(self.work, ignore_errors=True)
        self.work = None


if __name__ == "__main__":
    # Manual use: start a cluster, print its DSN, stop on Enter.
    c = Cluster().start()
    print(c.dsn(), flush=True)
    try:
        input()
    finally:
        c.stop()
