"""One record per egress the service is running: what it keeps of the egress while its handler lives."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from livekit.protocol import egress as eg

from ..contract.events import HandlerEvent, TrackReceive, UploadTotals
from ..contract.job import Command, JobSpec
from .handler_process import HandlerProcess
from .job_record import JobRecord

log = logging.getLogger(__name__)
PAUSE_ACK_S = 5.0  # how long pause/resume wait for the handler to confirm


@dataclass(eq=False)
class EgressJob:
    """An egress of this service, from its start until its handler has exited.

    ``info`` is the live EgressInfo (what the API returns while it runs), ``spec`` what its handler
    executes; ``legacy`` names the legacy result oneof its request used (``file``, ``segments``, ...);
    ``external`` marks livekit-server's job (livekit-server sends its webhooks); ``webhook_urls`` are the
    request's own. ``handler`` is set once its process started; ``paused``, ``pause_ack`` (the handler's
    paused/resumed acknowledgement awaited) and ``ending_watch`` (the kill of a handler slow to end) follow
    its commands; ``announced`` is the status last announced by webhook (None: none yet); ``preview_asked``
    when its live preview was last asked for (:mod:`.previews`). ``receive`` and ``uploads`` are what its
    handler last reported of its tracks' receive health and its upload totals (for :mod:`pyegress.metrics`).
    """

    info: eg.EgressInfo
    spec: JobSpec | None = None  # None for an egress a previous run left behind (:meth:`EgressService.recover`)
    legacy: str = ""
    external: bool = False
    webhook_urls: list[str] = field(default_factory=list)
    handler: HandlerProcess | None = None
    paused: bool = False
    pause_ack: asyncio.Future | None = None
    ending_watch: asyncio.TimerHandle | None = None
    announced: int | None = None
    preview_asked: float = float("-inf")  # loop time (s) of the last ``preview`` command
    receive: list[TrackReceive] = field(default_factory=list)
    uploads: list[UploadTotals] = field(default_factory=list)

    @property
    def egress_id(self) -> str:
        return self.info.egress_id

    def record(self) -> str:
        """The persisted :class:`~.job_record.JobRecord` of this egress, as stored beside its EgressInfo."""
        return JobRecord.of(self.spec, self.legacy, self.external).dump()

    async def set_paused(self, paused: bool) -> None:
        """Pause or resume the handler (which must have started) and wait until it confirms, at most
        :data:`PAUSE_ACK_S`: the caller learns when recording really stopped (or went on), not when it was
        asked. Nothing happens if it already is so."""
        if paused == self.paused:
            return
        self.paused = paused
        ack = self.pause_ack = asyncio.get_running_loop().create_future()
        await self.handler.send(Command(cmd="pause" if paused else "resume"))
        try:
            await asyncio.wait_for(ack, PAUSE_ACK_S)
        except asyncio.TimeoutError:
            log.warning("egress %s: no %s acknowledgement within %s s", self.egress_id,
                        "pause" if paused else "resume", PAUSE_ACK_S)
        finally:
            self.pause_ack = None

    def acknowledge(self, event: HandlerEvent) -> None:
        """The handler's ``paused`` / ``resumed`` event: wakes :meth:`set_paused`."""
        if self.pause_ack is not None and not self.pause_ack.done():
            self.pause_ack.set_result(event.event)

    def watch_ending(self, timeout_s: float) -> None:
        """Bound the ending: a handler that has not exited ``timeout_s`` after it was asked to stop (or said
        it was ending) is killed (its egress then ends FAILED with what its files hold)."""
        handler = self.handler
        if handler is None or self.ending_watch is not None or handler.proc is None:
            return

        def kill() -> None:
            if handler.proc.returncode is None:
                log.error("egress %s: no end within %s s of ending; killing its handler", self.egress_id, timeout_s)
                handler.proc.kill()

        self.ending_watch = asyncio.get_running_loop().call_later(timeout_s, kill)

    def handler_exited(self) -> bool:
        """Release what waits on the handler, which has exited; True if the ending watch had killed it."""
        watch, self.ending_watch, self.paused = self.ending_watch, None, False
        if watch is not None:
            watch.cancel()
        if self.pause_ack is not None and not self.pause_ack.done():  # nobody will confirm a pause any more
            self.pause_ack.set_result("exited")
        return watch is not None and watch.when() <= asyncio.get_running_loop().time()

    def take_file_names(self, event: HandlerEvent) -> bool:
        """Take the names the handler's files really got (``name-1.mp4`` when another egress took the name
        first) into ``spec``, so manifests and a restarted service find them; True if any changed."""
        renamed = False
        for target, result in zip(self.spec.files, event.files):
            if (target.path, target.filename) != (result.path, result.filename):
                target.path, target.filename, renamed = result.path, result.filename, True
        return renamed


def request_webhooks(info: eg.EgressInfo) -> list[str]:
    """The request's own webhook URLs (``webhooks`` of its request, as echoed in ``info``)."""
    request = getattr(info, info.WhichOneof("request") or "", None)
    return [w.url for w in getattr(request, "webhooks", []) if w.url]
