"""Sends LiveKit webhooks for egress events (``egress_started``, ``egress_updated``, ``egress_ended``).

Signed as livekit-server signs them (LiveKit docs, "Webhooks"): the body is a
``livekit.WebhookEvent`` as JSON, ``Content-Type: application/webhook+json``,
and the ``Authorization`` header is a JWT signed with the API secret whose
``sha256`` claim is the base64 SHA-256 of the body, so ``livekit-api``'s
``WebhookReceiver`` validates it. Every (event, URL) is written to the outbox
first, then delivered with retries and exponential backoff; pending deliveries
resume after a restart. The outbox's depth and the deliveries are counted in
:mod:`pyegress.metrics` (docs/metrics.md).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
import uuid
from datetime import timedelta

import httpx
from google.protobuf import json_format
from livekit import api
from livekit.protocol import egress as eg
from livekit.protocol.webhook import WebhookEvent

from ..database.webhook_store import LIVEKIT_WEBHOOK_TYPE, WebhookDelivery, WebhookStore
from ..metrics import WEBHOOK_DELIVERIES, WEBHOOK_FAILURES, WEBHOOK_OUTBOX

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 12
MAX_BACKOFF_S = 300.0


def backoff_s(attempts: int) -> float:
    """Seconds before retry number ``attempts`` (1 s, 2 s, 4 s, ... up to 5 min)."""
    return min(MAX_BACKOFF_S, 2.0 ** max(0, attempts - 1))


def sign(body: str, api_key: str, api_secret: str) -> str:
    """The ``Authorization`` token for ``body``: a LiveKit JWT carrying the body's SHA-256."""
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    return (api.AccessToken(api_key, api_secret).with_sha256(digest)
            .with_ttl(timedelta(minutes=10)).to_jwt())


class WebhookSender:
    """Queues egress events for ``urls`` (plus per-request URLs) and delivers them in the background."""

    def __init__(self, store: WebhookStore, urls: list[str], api_key: str, api_secret: str) -> None:
        self.store = store
        self.urls = urls
        self.api_key, self.api_secret = api_key, api_secret
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    def enqueue(self, event: str, info: eg.EgressInfo, extra_urls: list[str] = ()) -> None:
        """Write ``event`` about ``info`` to the outbox for every URL; delivery happens in the background."""
        urls = list(dict.fromkeys([*self.urls, *extra_urls]))
        if not urls:
            return
        event_id = "EV_" + uuid.uuid4().hex[:12]
        message = WebhookEvent(event=event, id=event_id, created_at=int(time.time()))
        message.egress_info.CopyFrom(info)
        self._add(event_id, event, info.egress_id, json_format.MessageToJson(message, indent=None), urls,
                  LIVEKIT_WEBHOOK_TYPE)

    def enqueue_json(self, event: str, egress_id: str, payload: dict, urls: list[str]) -> None:
        """Queue a REST dialect's own webhook: ``payload`` as ``application/json`` to ``urls`` only, with the
        same outbox, retries, ordering per egress and signature header as LiveKit's events."""
        if urls:
            self._add("EV_" + uuid.uuid4().hex[:12], event, egress_id, json.dumps(payload), urls, "application/json")

    def _add(self, event_id: str, event: str, egress_id: str, body: str, urls: list[str], content_type: str) -> None:
        now = time.time()
        self.store.add([WebhookDelivery(id=f"{event_id}-{i}", event_id=event_id, event=event,
                                        egress_id=egress_id, url=url, body=body, created_at=now,
                                        attempts=0, next_attempt_at=now, last_error="", content_type=content_type)
                        for i, url in enumerate(urls)])
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="webhooks")

    async def stop(self, drain_s: float = 5.0) -> None:
        """Give pending deliveries ``drain_s`` to go out, then stop (what is left stays in the outbox)."""
        deadline = time.time() + drain_s
        while time.time() < deadline and self.store.due(time.time(), limit=1):
            await asyncio.sleep(0.1)
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=5.0) as client:
            while True:
                # In order per (egress, URL): a later event waits while an earlier one is retried.
                blocked: set[tuple[str, str]] = set()
                for row in self.store.list(pending_only=True):
                    key = (row.egress_id, row.url)
                    if key in blocked or row.next_attempt_at == float("inf"):  # given up: no longer blocks
                        continue
                    if row.next_attempt_at > time.time() or not await self._deliver(client, row):
                        blocked.add(key)
                pending, given_up = self.store.undelivered()
                WEBHOOK_OUTBOX.labels("pending").set(pending)
                WEBHOOK_OUTBOX.labels("given_up").set(given_up)
                next_at = self.store.next_due_at()
                timeout = None if next_at is None or next_at == float("inf") else max(0.05, next_at - time.time())
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout)
                except asyncio.TimeoutError:
                    pass

    async def _deliver(self, client: httpx.AsyncClient, row: WebhookDelivery) -> bool:
        """One attempt; returns whether it was delivered."""
        headers = {"Content-Type": row.content_type,
                   "Authorization": sign(row.body, self.api_key, self.api_secret)}
        try:
            resp = await client.post(row.url, content=row.body, headers=headers)
            error = "" if resp.is_success else f"HTTP {resp.status_code}"
        except httpx.HTTPError as e:
            error = f"{type(e).__name__}: {e}"
        attempts = row.attempts + 1
        if not error:
            self.store.update(row.id, attempts=attempts, delivered_at=time.time())  # last_error stays as history
            WEBHOOK_DELIVERIES.inc()
            return True
        WEBHOOK_FAILURES.inc()
        log.warning("webhook %s to %s failed (attempt %d): %s", row.event, row.url, attempts, error)
        # After MAX_ATTEMPTS the row stays undelivered with its error, for `pyegress webhooks replay`.
        next_at = time.time() + backoff_s(attempts) if attempts < MAX_ATTEMPTS else float("inf")
        self.store.update(row.id, attempts=attempts, next_attempt_at=next_at, last_error=error)
        return False
