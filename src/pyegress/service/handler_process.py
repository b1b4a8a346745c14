"""The service's handle on one handler process (``python -m pyegress.handler``)."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Awaitable, Callable

from ..handler.pooled import Assignment
from ..contract.job import Command, JobSpec
from ..contract.events import HandlerEvent
from .handler_pool import HandlerPool

log = logging.getLogger(__name__)


class HandlerProcess:
    """Starts a handler for ``spec`` and relays its events to ``on_event``.

    ``on_exit(returncode)`` runs once the process has exited and every event was
    delivered. The handler's log goes to ``log_path``. With a ``pool``, the handler
    is one of its waiting processes if it has one, else a new process.
    """

    def __init__(self, spec: JobSpec, log_path: Path,
                 on_event: Callable[[HandlerEvent], Awaitable[None]],
                 on_exit: Callable[[int], Awaitable[None]], pool: HandlerPool | None = None) -> None:
        self.spec = spec
        self.log_path = log_path
        self.on_event, self.on_exit = on_event, on_exit
        self.pool = pool
        self.proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task | None = None
        self._imported: Callable[[], None] | None = None  # tells the pool a handler it did not give has imported

    async def start(self) -> None:
        """Launch the process (or take one from the pool) and send it the job.

        Raises:
            OSError: the process could not be started.
        """
        job = self.spec.model_dump_json().encode() + b"\n"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        proc = await self.pool.take() if self.pool is not None else None
        if proc is not None:
            assignment = Assignment(egress_id=self.spec.egress_id, log_path=str(self.log_path))
            try:
                proc.stdin.write(assignment.model_dump_json().encode() + b"\n" + job)
                await proc.stdin.drain()
                self.proc = proc
            except (BrokenPipeError, ConnectionResetError):  # it died while waiting: start one instead
                log.warning("egress %s: pooled worker %s is gone; starting a new one", self.spec.egress_id, proc.pid)
        if self.proc is None:
            with open(self.log_path, "ab") as log_file:
                self.proc = await asyncio.create_subprocess_exec(
                    # the egress ID on the command line only labels the process (ps, kill)
                    sys.executable, "-m", "pyegress.handler", self.spec.egress_id,
                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log_file)
            self.proc.stdin.write(job)
            await self.proc.stdin.drain()
            if self.pool is not None:
                self._imported = self.pool.unpooled_start()
        self._task = asyncio.create_task(self._relay(), name=f"worker-{self.spec.egress_id}")

    async def send(self, command: Command) -> None:
        """Send a command; a handler that has already exited ignores it."""
        if self.proc is None or self.proc.returncode is not None or self.proc.stdin.is_closing():
            return
        try:
            self.proc.stdin.write(command.model_dump_json().encode() + b"\n")
            await self.proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    async def _relay(self) -> None:
        assert self.proc is not None
        async for line in self.proc.stdout:
            if self._imported is not None:  # a handler's first event comes after its imports
                self._imported()
            try:
                event = HandlerEvent.model_validate_json(line)
            except ValueError:
                log.warning("egress %s: unreadable worker output %r", self.spec.egress_id, line[:200])
                continue
            await self.on_event(event)
        if self._imported is not None:
            self._imported()
        code = await self.proc.wait()
        await self.on_exit(code)

    async def wait(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)
