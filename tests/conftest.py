"""Shared fixtures: a real livekit-server, a real ``pyegress serve``, generated publishers, a PostgreSQL server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
from livekit import api

from pyegress.devtools.livekit_server import LiveKitServer
from pyegress.handler.pooled import IDLE_LABEL
from pyegress.devtools.process import ServerProcess
from support.postgres_server import PostgresServer
from pyegress.devtools.pyegress_server import PyegressServer

EMPTY_TIMEOUT_S = 3.0

SERVER_FIXTURES = frozenset({"livekit", "egress_server", "postgres", "publishers"})
"""This conftest's fixtures that run a real server (livekit-server, ``pyegress serve``, PostgreSQL, publishers)."""


def _is_e2e(item: pytest.Item) -> bool:
    """Whether ``item`` runs against real servers: it lives in a ``*_e2e.py`` file; or a fixture it uses, directly
    or through other fixtures, is one of :data:`SERVER_FIXTURES` or a module- or session-scoped fixture of a test
    module (those exist to start a server once per module: S3, GCS, Azure, SFTP, livekit-server, ...); or its body
    starts a server itself; or one of its parameters names a server fixture (``test_database``'s
    ``db_url[postgres]`` fetches it by name)."""
    if item.path.name.endswith("_e2e.py") or _starts_a_server(item):
        return True
    names = set(getattr(item, "fixturenames", ()))
    if names & SERVER_FIXTURES:
        return True
    info = getattr(item, "_fixtureinfo", None)
    for name in names:
        for fixturedef in (info.name2fixturedefs.get(name, ()) if info else ()):
            if fixturedef.scope != "function" and fixturedef.func.__module__.startswith("test_"):
                return True
    callspec = getattr(item, "callspec", None)
    return bool(callspec and SERVER_FIXTURES & {v for v in callspec.params.values() if isinstance(v, str)})


def _starts_a_server(item: pytest.Item) -> bool:
    """Whether the test's own body names a server class of its module (``S3Server(...)``, ``LiveKitServer``)."""
    function, module = getattr(item, "function", None), getattr(item, "module", None)
    if function is None or module is None:
        return False
    return any(isinstance(obj := getattr(module, name, None), type) and issubclass(obj, ServerProcess)
               for name in function.__code__.co_names)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test ``e2e`` (real servers, see :func:`_is_e2e`) or ``unit``: ``pytest -m unit`` runs in seconds."""
    for item in items:
        item.add_marker(pytest.mark.e2e if _is_e2e(item) else pytest.mark.unit)


@pytest.fixture(scope="session")
def livekit(tmp_path_factory):
    work = tmp_path_factory.mktemp("livekit")
    with LiveKitServer(log_path=work / "livekit-server.log") as server:
        yield server


@pytest.fixture(scope="session")
def egress_server(livekit, tmp_path_factory):
    work = tmp_path_factory.mktemp("pyegress")
    with PyegressServer(work, livekit.url, livekit.api_key, livekit.api_secret,
                        extra_env={"PYEGRESS_EMPTY_TIMEOUT_S": str(EMPTY_TIMEOUT_S),
                                   "PYEGRESS_PROGRESS_INTERVAL_S": "1",
                                   "PYEGRESS_UPLOAD_RETRY_BASE_S": "0.2"}) as server:
        yield server


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL server; ``postgres.create_database(name)`` gives a fresh database's URL."""
    with PostgresServer() as server:
        yield server


class Publishers:
    """Generated publishers in a separate process (``python -m pyegress.devtools.publisher``)."""

    def __init__(self, livekit: LiveKitServer, room: str, count: int, log: Path, **kw) -> None:
        args = [sys.executable, "-m", "pyegress.devtools.publisher", "--url", livekit.url,
                "--api-key", livekit.api_key, "--api-secret", livekit.api_secret, "--room", room,
                "--count", str(count)]
        for k, v in kw.items():
            args += [f"--{k.replace('_', '-')}", str(v)]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=open(log, "ab"), text=True)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.proc.kill()
            raise RuntimeError(f"publishers did not start: {log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@contextmanager
def publisher_factory(livekit: LiveKitServer, log_dir: Path):
    """``start(room, count, **cli_options)`` for generated publishers on ``livekit``; all stop on exit."""
    started: list[Publishers] = []

    def start(room: str, count: int = 1, **kw) -> Publishers:
        p = Publishers(livekit, room, count, log_dir / f"publishers-{len(started)}.log", **kw)
        started.append(p)
        return p

    try:
        yield start
    finally:
        for p in started:
            p.stop()


@pytest.fixture
def publishers(livekit, tmp_path):
    """Factory: ``publishers(room, count, **cli_options)`` starts generated publishers; all stop at teardown."""
    with publisher_factory(livekit, tmp_path) as start:
        yield start


@pytest.fixture
def room_name() -> str:
    return f"room-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def lkapi(livekit):
    async with api.LiveKitAPI(livekit.http_url, livekit.api_key, livekit.api_secret) as lk:
        yield lk


@pytest.fixture
async def egress_api(egress_server, livekit):
    """``livekit-api``'s own client pointed at pyegress (its ``.egress`` is the EgressService client). At
    teardown it waits (up to 30 s) until the test's handlers have exited: an egress is reported ended
    before its handler has closed everything (Chromium, say), and until then its cores count against the
    shared server's CPU budget, which would refuse the next test's start."""
    async with api.LiveKitAPI(egress_server.url, livekit.api_key, livekit.api_secret) as lk:
        yield lk
    deadline = time.monotonic() + 30
    while _busy_handlers(egress_server.pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)


def _busy_handlers(pid: int) -> list[psutil.Process]:
    """Handler processes of ``pyegress serve`` ``pid`` recording (or finishing) an egress; idle pooled ones
    do not count."""
    busy = []
    for child in psutil.Process(pid).children():
        try:
            cmdline = child.cmdline()
        except psutil.NoSuchProcess:
            continue
        if "pyegress.handler" in cmdline and IDLE_LABEL not in cmdline:  # a pooled one is relabelled when assigned
            busy.append(child)
    return busy


async def wait_status(egress_api, egress_id: str, done, timeout_s: float = 60.0):
    """Poll ListEgress until ``done(info)``; returns ``(info, monotonic time it was seen)``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        items = (await egress_api.egress.list_egress(api.ListEgressRequest(egress_id=egress_id))).items
        if items and done(items[0]):
            return items[0], time.monotonic()
        await asyncio.sleep(0.05)
    raise AssertionError(f"egress {egress_id} did not reach the expected state in {timeout_s} s: {items}")
