"""Webhooks of status changes, as livekit-server sends them: ``egress_started`` when an egress is created,
``egress_updated`` on each status change, ``egress_ended`` at the end (progress alone is not announced).
Delivery (signing, retries, order) is :mod:`pyegress.webhooks.sender`'s."""

from __future__ import annotations

from livekit.protocol import egress as eg

from ..database.egress_store import ACTIVE_STATUSES
from ..webhooks.sender import WebhookSender
from .egress_job import EgressJob


def announce(webhooks: WebhookSender | None, info: eg.EgressInfo, job: EgressJob | None) -> None:
    """Announce ``info``'s status if it changed since ``job.announced`` (and remember it); nothing for
    livekit-server's jobs (``job.external``), which livekit-server announces itself."""
    if webhooks is None or job is None or job.external or job.announced == info.status:
        return
    first = job.announced is None
    job.announced = info.status
    event = ("egress_ended" if info.status not in ACTIVE_STATUSES else "egress_started" if first
             else "egress_updated")
    webhooks.enqueue(event, info, job.webhook_urls)
