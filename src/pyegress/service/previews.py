"""Live previews of active egresses, for ``GET /egress/{egress_id}/preview.jpg`` and ``.mjpeg``.

The worker of an egress with a picture writes a JPEG of it to ``JobSpec.preview_path`` about once a
second for 10 s after each ``preview`` command (:mod:`pyegress.media.outputs.preview`). Here the
service sends that command (at most every :data:`ASK_EVERY_S` per egress, however many watch) and
reads the file: the newest one if it is fresh, else what the worker writes next. Nobody watching,
no command is sent and the worker writes nothing.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import AsyncIterator

from livekit.protocol import egress as eg

from ..contract.job import Command
from ..errors import EgressError
from ..storage.local import open_existing
from .egress_job import EgressJob
from .running import RunningEgresses

#: Shortest time (s) between two ``preview`` commands to one worker; well inside its 10 s watch.
ASK_EVERY_S = 2.0
#: A preview file written within this many seconds is current (the worker writes one a second).
FRESH_S = 1.5
#: How long (s) a still preview waits for the worker's first image before answering with what there is.
FIRST_WAIT_S = 2.0
#: How often (s) the preview file is looked at while waiting for a new image.
POLL_S = 0.05


def _stat(path: str) -> os.stat_result | None:
    try:
        return os.stat(path, follow_symlinks=False)
    except OSError:
        return None


def _read(path: str) -> tuple[bytes, int] | None:
    """The file at ``path`` and its mtime (ns), or None if it cannot be read."""
    try:
        with open_existing(path) as f:  # never through a symlink
            return f.read(), os.fstat(f.fileno()).st_mtime_ns
    except OSError:
        return None


class Previews:
    """The live previews of the egresses ``jobs`` runs."""

    def __init__(self, jobs: RunningEgresses) -> None:
        self.jobs = jobs

    def _job(self, egress_id: str) -> EgressJob | None:
        """The running job of ``egress_id`` if it is EGRESS_ACTIVE with a picture to preview."""
        job = self.jobs.running(egress_id)
        if job is None or job.spec is None or not job.spec.preview_path or job.info.status != eg.EgressStatus.EGRESS_ACTIVE:
            return None
        return job

    def check(self, egress_id: str) -> EgressJob:
        """The job whose preview is asked for.

        Raises:
            EgressError: ``not_found`` unless ``egress_id`` is active here and has video.
        """
        job = self._job(egress_id)
        if job is None:
            raise EgressError("not_found", f"egress {egress_id} has no live preview: it is not active here "
                              "or records no video", argument="egress_id")
        return job

    async def _ask(self, job: EgressJob) -> None:
        now = asyncio.get_running_loop().time()
        if now - job.preview_asked >= ASK_EVERY_S:
            job.preview_asked = now
            await job.handler.send(Command(cmd="preview"))

    async def latest(self, egress_id: str) -> bytes:
        """The newest preview JPEG of ``egress_id``: one written in the last :data:`FRESH_S` seconds, waiting
        up to :data:`FIRST_WAIT_S` for it; an older one if that is all there is (a paused egress).

        Raises:
            EgressError: ``not_found`` (see :meth:`check`, also if the egress ends meanwhile);
                ``unavailable`` if the worker has written no preview yet.
        """
        job = self.check(egress_id)
        path = job.spec.preview_path
        await self._ask(job)
        deadline = time.monotonic() + FIRST_WAIT_S
        while True:
            st = _stat(path)
            if st is not None and time.time() - st.st_mtime <= FRESH_S or time.monotonic() >= deadline:
                break
            await asyncio.sleep(POLL_S)
            self.check(egress_id)
        read = await asyncio.to_thread(_read, path)
        if not read or not read[0]:
            raise EgressError("unavailable", f"egress {egress_id} has no preview picture yet; try again",
                              egress_id=egress_id)
        return read[0]

    async def stream(self, egress_id: str, poll_s: float = 0.1) -> AsyncIterator[bytes]:
        """Each new preview JPEG of ``egress_id`` (about one a second) while it stays active; ``poll_s`` is how
        often (s) the file is looked at. Ends when the egress is no longer active."""
        last = None
        while (job := self._job(egress_id)) is not None:
            await self._ask(job)
            path = job.spec.preview_path
            st = _stat(path)
            if st is not None and st.st_mtime_ns != last and time.time() - st.st_mtime <= FRESH_S:
                read = await asyncio.to_thread(_read, path)
                if read and read[0] and read[1] != last:
                    data, last = read
                    yield data
            await asyncio.sleep(poll_s)
