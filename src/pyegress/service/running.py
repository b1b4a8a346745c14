"""The egresses a service runs, one :class:`~.egress_job.EgressJob` each from launch until its handler
exits: handlers are launched, their events folded into the EgressInfo, and an egress its handler left
without an end fails with what its files hold."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from contextlib import contextmanager
from typing import Callable, Iterator

from livekit.protocol import egress as eg

from .. import metrics
from ..config import Settings
from ..contract.egress_info import apply_worker_event, set_failed
from ..contract.events import HandlerEvent
from ..contract.job import Command, IOReport
from ..database.egress_store import ACTIVE_STATUSES, EgressStore
from ..errors import EgressError
from .admission import CpuAdmission
from .egress_job import EgressJob, request_webhooks
from .handler_pool import HandlerPool
from .handler_process import HandlerProcess
from .orphans import read_back

log = logging.getLogger(__name__)
S = eg.EgressStatus


class RunningEgresses:
    """The running egresses of one service. ``save(info)`` stores, announces and publishes a change
    (the service's); the CPU ``admission`` of an egress is released when its handler exits."""

    def __init__(self, settings: Settings, store: EgressStore, admission: CpuAdmission, pool: HandlerPool,
                 save: Callable[[eg.EgressInfo], None]) -> None:
        self.settings, self.store, self.admission, self.pool, self._save = settings, store, admission, pool, save
        self._jobs: dict[str, EgressJob] = {}

    def get(self, egress_id: str) -> EgressJob | None:
        """The record of ``egress_id`` while it runs (from its launch until its handler exits)."""
        return self._jobs.get(egress_id)

    def running(self, egress_id: str) -> EgressJob | None:
        """The record of ``egress_id`` if its handler process has started, else None."""
        job = self._jobs.get(egress_id)
        return job if job is not None and job.handler is not None else None

    def all(self) -> list[EgressJob]:
        """Every egress's record, from launch until its handler exits (a copy of the list: safe to call from
        another thread, such as the metrics server's)."""
        return list(self._jobs.values())

    def ids(self) -> list[str]:
        """Egresses with a running handler process."""
        return [egress_id for egress_id, job in self._jobs.items() if job.handler is not None]

    @contextmanager
    def listed(self, job: EgressJob) -> Iterator[None]:
        """``job`` counts as running for the duration (an egress a previous run left, while its end is saved)."""
        self._jobs[job.egress_id] = job
        try:
            yield
        finally:
            self._jobs.pop(job.egress_id, None)

    async def launch(self, job: EgressJob) -> None:
        """Store the new egress and start its handler; its events and exit drive the egress from then on.

        Raises:
            EgressError: ``internal`` if its process cannot be started (the egress is then EGRESS_FAILED).
        """
        info, spec, egress_id = job.info, job.spec, job.egress_id
        job.webhook_urls = request_webhooks(info)
        self._jobs[egress_id] = job
        self._save(info)
        self.store.save_job(egress_id, job.record())
        # the handler folds its events into this EgressInfo for its manifests (and its own report)
        spec.info, spec.legacy = base64.b64encode(info.SerializeToString()).decode(), job.legacy
        if job.external and self.settings.redis.configured:
            spec.io_report = IOReport(redis=self.settings.redis)
        handler = HandlerProcess(spec, self.settings.log_dir / f"{egress_id}.log",
                                 lambda event: self._on_event(job, event), lambda code: self._on_exit(job, code),
                                 self.pool)
        try:
            await handler.start()
        except OSError as e:
            info.status, info.error = S.EGRESS_FAILED, f"cannot start worker: {e}"
            metrics.egress_failed(info, "launch")
            self._save(info)
            self._jobs.pop(egress_id, None)
            raise EgressError("internal", "cannot start egress worker") from None
        job.handler = handler
        self.admission.attach(egress_id, handler.pid)
        log.info("egress %s started for room %s (handler pid %s)", egress_id, info.room_name, handler.pid)

    async def _on_event(self, job: EgressJob, event: HandlerEvent) -> None:
        """Fold a handler event into the egress's EgressInfo and save it; a pause acknowledgement only
        wakes :meth:`EgressJob.set_paused`."""
        info = job.info
        if event.event in ("paused", "resumed"):  # acknowledgements: nothing to store
            job.acknowledge(event)
            return
        if event.event == "progress":
            job.receive = event.tracks
        metrics.count_uploads(job.uploads, event.uploads)
        job.uploads = event.uploads or job.uploads
        try:
            apply_worker_event(info, event, job.legacy)
            if event.event == "failed":
                # 503: the room connection failed (media/source/base.py CODE_ROOM_CONNECTION)
                metrics.egress_failed(info, "room_connection" if event.error_code == 503 else "recording")
            if event.event == "active" and job.take_file_names(event):
                self.store.save_job(job.egress_id, job.record())
            if event.event == "ending":
                job.watch_ending(self.settings.ending_timeout_s)
        except Exception as e:  # no error here may leave the egress without its end
            log.exception("egress %s: handling its %s event failed", job.egress_id, event.event)
            if event.event in ("complete", "failed", "aborted") and info.status in ACTIVE_STATUSES:
                set_failed(info, f"finishing the egress failed: {e}")
                metrics.egress_failed(info, "internal")
        try:
            self._save(info)
        except Exception:  # the store is failing: keep relaying, _on_exit tries again
            log.exception("egress %s: cannot save its %s event", job.egress_id, event.event)

    async def _on_exit(self, job: EgressJob, code: int) -> None:
        """The handler has exited: an egress it left without an end fails with what its files hold."""
        info, timed_out = job.info, job.handler_exited()
        if info.status in ACTIVE_STATUSES:
            # a crash (or a kill after the ending timeout): what the files hold is the truth
            error = (f"egress did not finish within {self.settings.ending_timeout_s:g} s of ending" if timed_out
                     else f"egress worker exited unexpectedly (code {code})")
            set_failed(info, error)
            metrics.egress_failed(info, "ending_timeout" if timed_out else "handler_exit")
            try:
                await asyncio.to_thread(read_back, info, job.spec.files, job.spec.segments)
            except Exception:  # the terminal state matters more than its details
                log.exception("egress %s: reading back its files failed", job.egress_id)
            self._save(info)
        self._jobs.pop(job.egress_id, None)
        self.admission.release(job.egress_id)
        if job.spec is not None and job.spec.preview_path:  # a worker that crashed left its preview behind
            try:
                os.unlink(job.spec.preview_path)
            except OSError:
                pass

    async def stop_all(self) -> None:
        """Stop every running egress and wait until its handler has exited (its files finished)."""
        handlers = [job.handler for job in self._jobs.values() if job.handler is not None]
        for handler in handlers:
            await handler.send(Command(cmd="stop"))
        await asyncio.gather(*(h.wait() for h in handlers), return_exceptions=True)
