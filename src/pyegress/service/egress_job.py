"""One record per egress the service is running: what it keeps of the egress while its handler lives."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from livekit.protocol import egress as eg

from ..contract.events import HandlerEvent
from ..contract.job import JobSpec
from .handler_process import HandlerProcess
from .job_record import JobRecord


@dataclass(eq=False)
class EgressJob:
    """An egress of this service, from its start until its handler has exited.

    ``info`` is the live EgressInfo (what the API returns while it runs), ``spec`` what its handler
    executes; ``legacy`` names the legacy result oneof its request used (``file``, ``segments``, ...);
    ``external`` marks livekit-server's job (livekit-server sends its webhooks); ``webhook_urls`` are the
    request's own. ``handler`` is set once its process started; ``paused``, ``pause_ack`` (the handler's
    paused/resumed acknowledgement awaited) and ``ending_watch`` (the kill of a handler slow to end) follow
    its commands; ``announced`` is the status last announced by webhook (None: none yet).
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

    @property
    def egress_id(self) -> str:
        return self.info.egress_id

    def record(self) -> str:
        """The persisted :class:`~.job_record.JobRecord` of this egress, as stored beside its EgressInfo."""
        return JobRecord.of(self.spec, self.legacy, self.external).dump()

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
