"""Worker processes started ahead of need, so that an egress does not wait for Python to import the stack.

A handler process spends most of its start importing (livekit rtc, PyAV, numpy, pydantic models): about
0.7 CPU-s, several seconds of wall time on a busy machine. The pool keeps ``size`` processes that have
done so and wait for an egress (:mod:`pyegress.handler.pooled`); :meth:`HandlerPool.take` hands one out
and the pool starts a replacement in the background: one at a time, and only once the starts have done
theirs (1 s after the last take, and after the imports of handlers started because the pool was empty),
so that refilling never slows the starts it is for.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..handler.pooled import IDLE_LABEL, POOL_ARG, READY

log = logging.getLogger(__name__)

#: After a take, the refill waits this long (s), so the taken process starts its egress without an import
#: beside it; a burst of takes restarts the wait.
REFILL_DELAY_S = 1.0
#: ... and while handlers started outside the pool (it was empty) are importing, up to this long (s) after
#: the last take.
UNPOOLED_WAIT_S = 10.0
#: Waits (s) before spawning again after a pooled process died before it was ready: doubling from the first
#: to the last, so a broken installation does not spin.
RETRY_DELAYS_S = (1.0, 60.0)
SETPRIV = shutil.which("setpriv")  # util-linux


@dataclass
class _Pooled:
    proc: asyncio.subprocess.Process
    ready: asyncio.Task  # True once the process wrote READY, False if it exited first


class HandlerPool:
    """Keeps ``size`` (≥ 0; 0 disables the pool) imported handler processes waiting for an egress.

    Idle processes log to ``log_dir/worker-pool.log`` until they get an egress. Call :meth:`start` on the
    event loop and :meth:`close` at shutdown; idle processes also die with the service if it is killed.
    """

    def __init__(self, size: int, log_dir: Path) -> None:
        self.size = max(0, size)
        self.log_path = Path(log_dir) / "worker-pool.log"
        self._idle: deque[_Pooled] = deque()
        self._wake: asyncio.Event | None = None
        self._taken_at = 0.0  # loop time of the last take
        self._unpooled = 0  # handlers started outside the pool that are still importing
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Start filling the pool in the background (on the running loop); nothing if ``size`` is 0."""
        if self.size and self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._fill(), name="worker-pool")

    async def take(self) -> asyncio.subprocess.Process | None:
        """An imported handler process waiting for its :class:`~pyegress.handler.pooled.Assignment` line, or
        None if the pool is empty (the caller starts one itself, see :meth:`unpooled_start`). Waits for a
        process still importing: that is sooner than starting another."""
        self._taken_at = asyncio.get_running_loop().time()
        while self._idle:
            entry = self._idle.popleft()
            self._wake.set()
            if await asyncio.shield(entry.ready) and entry.proc.returncode is None:
                return entry.proc
        return None

    def unpooled_start(self) -> Callable[[], None]:
        """Note a handler started outside the pool; call the returned function (idempotent) once it has
        imported (its first event, or its exit). The refill does not import beside such handlers."""
        self._unpooled += 1
        pending = True

        def imported() -> None:
            nonlocal pending
            if pending:
                pending = False
                self._unpooled -= 1
        return imported

    async def close(self) -> None:
        """Stop refilling and end the idle processes (their stdin closes: they exit)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        while self._idle:
            entry = self._idle.popleft()
            entry.proc.stdin.close()
            try:
                await asyncio.wait_for(entry.proc.wait(), 5)
            except asyncio.TimeoutError:
                entry.proc.kill()
                await entry.proc.wait()
            entry.ready.cancel()

    async def _fill(self) -> None:
        loop = asyncio.get_running_loop()
        retry = RETRY_DELAYS_S[0]
        while True:
            while len(self._idle) < self.size:
                wait = self._taken_at + REFILL_DELAY_S - loop.time()
                if self._unpooled and loop.time() < self._taken_at + UNPOOLED_WAIT_S:
                    wait = max(wait, 0.1)
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue  # another take may have come meanwhile
                try:
                    entry = await self._spawn()
                except OSError as e:
                    log.error("worker pool: cannot start a worker process: %s", e)
                    await asyncio.sleep(retry)
                    retry = min(retry * 2, RETRY_DELAYS_S[1])
                    continue
                self._idle.append(entry)
                if await asyncio.shield(entry.ready):  # one import at a time
                    retry = RETRY_DELAYS_S[0]
                    continue
                if entry in self._idle:
                    self._idle.remove(entry)
                log.error("worker pool: a worker process exited (code %s) before it was ready; see %s",
                          entry.proc.returncode, self.log_path)
                await asyncio.sleep(retry)
                retry = min(retry * 2, RETRY_DELAYS_S[1])
            self._wake.clear()
            await self._wake.wait()

    async def _spawn(self) -> _Pooled:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # setpriv makes it die with the service from its first instruction, not only once it has imported
        # (pooled.wait_for_job sets the same signal itself, for machines without setpriv)
        setpriv = [SETPRIV, "--pdeathsig", "KILL"] if SETPRIV else []
        with open(self.log_path, "ab") as log_file:
            proc = await asyncio.create_subprocess_exec(
                *setpriv, sys.executable, "-m", "pyegress.handler", f"{POOL_ARG}{os.getpid()}", IDLE_LABEL,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log_file)

        async def ready() -> bool:
            async for line in proc.stdout:  # what an import may print before READY is no event
                if line == READY:
                    return True
            await proc.wait()
            return False

        return _Pooled(proc, asyncio.create_task(ready(), name=f"pooled-worker-{proc.pid}"))
