"""A throwaway PostgreSQL cluster for tests: Debian's ``postgresql`` binaries on a free loopback port.

The cluster lives in a fresh temporary directory and is deleted on stop. The
server refuses to run as root, so as root the cluster belongs to the
``postgres`` system user (made by Debian's package; ``nobody`` otherwise) and
the processes switch to it when spawned; the directory is made outside any
private (0700) test directory so that user can reach it. Authentication is
``trust`` on loopback only: a test server, never a deployment.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from pyegress.devtools.process import ServerProcess, free_port


def postgres_bindir() -> Path:
    """The directory of ``initdb`` and ``postgres``: on PATH, else the newest ``/usr/lib/postgresql/N/bin``.

    Raises:
        RuntimeError: PostgreSQL is not installed (``scripts/setup --test`` installs it).
    """
    found = shutil.which("initdb")
    if found and (Path(found).resolve().parent / "postgres").exists():
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    if not versions:
        raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql (scripts/setup --test does)")
    return Path(versions[-1]).parent


def _owner() -> str | None:
    """The user to run the server as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' user exists to own the cluster")


class PostgresServer(ServerProcess):
    """A PostgreSQL server on ``127.0.0.1:port`` with superuser ``postgres`` and no password.

    :meth:`create_database` makes a database and returns its SQLAlchemy URL
    (``postgresql+psycopg://``). Use as a context manager.
    """

    name = "postgres"
    superuser = "postgres"

    def __init__(self) -> None:
        self.port = free_port()
        self.bindir = postgres_bindir()
        self.user = _owner()
        self.workdir: Path | None = None

    def _run_as(self) -> dict:
        """Popen arguments that run a child as the cluster's owner (HOME too: psql and initdb read it)."""
        if self.user is None:
            return {}
        entry = pwd.getpwnam(self.user)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": [],
                "env": dict(os.environ, HOME=str(self.workdir), USER=self.user, LOGNAME=self.user)}

    def start(self, timeout_s: float = 60.0) -> "PostgresServer":
        """initdb a new cluster and start the server.

        Raises:
            RuntimeError: initdb fails or the server does not accept connections in ``timeout_s``.
        """
        self.workdir = Path(tempfile.mkdtemp(prefix="pyegress-postgres-"))
        data = self.workdir / "data"
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.workdir, entry.pw_uid, entry.pw_gid)
        log = self.workdir / "postgres.log"
        init = subprocess.run([str(self.bindir / "initdb"), "-D", str(data), "-U", self.superuser, "-A", "trust",
                               "-E", "UTF8", "--no-sync"], capture_output=True, text=True, cwd=self.workdir,
                              **self._run_as())
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed: {init.stderr[-2000:]}")
        # fsync off: a test cluster trades durability for speed; the socket stays in our own directory.
        args = [str(self.bindir / "postgres"), "-D", str(data), "-p", str(self.port), "-h", "127.0.0.1",
                "-k", str(self.workdir), "-c", "fsync=off", "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off", "-c", "max_connections=50"]
        self._spawn(args, self._ready, timeout_s, cwd=self.workdir, stdout=subprocess.DEVNULL,
                    stderr=open(log, "ab"), **self._run_as())
        return self

    def _ready(self) -> bool:
        return subprocess.run([str(self.bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
                              capture_output=True).returncode == 0

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of ``database`` on this server (psycopg 3 driver)."""
        return f"postgresql+psycopg://{self.superuser}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create database ``name`` (letters, digits, underscores) and return its URL.

        Raises:
            ValueError: ``name`` is not a plain identifier.
        """
        if not name.replace("_", "").isalnum():
            raise ValueError(f"database name must be letters, digits and underscores: {name!r}")
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=self.superuser, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Stop the server and delete the cluster. SIGINT is Postgres's fast shutdown: clients still
        connected (a pool left open) are disconnected instead of waited for."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
        super().stop()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
