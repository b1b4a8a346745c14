"""The ASGI application: every API dialect on one FastAPI app, sharing one EgressService."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ..bus.egress_worker import EgressWorker
from ..config import Settings
from ..service.egress_service import EgressService
from ..service.realtimekit import RealtimeKitRecordings
from ..store.egress_store import EgressStore
from ..store.realtimekit_store import RealtimeKitStore
from ..store.webhook_store import WebhookStore
from ..webhooks.sender import WebhookSender
from .rest.downloads import downloads_router
from .rest.realtimekit import realtimekit_router
from .rest.recordings import recordings_router
from .rest.rtcstack import rtcstack_router
from .twirp import egress_router

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the database is migrated first, the service starts and stops with the app's lifespan."""
    settings = settings or Settings()
    store = EgressStore(settings.database_url)
    webhooks = WebhookSender(WebhookStore(store.engine), settings.webhook_url_list, settings.api_key,
                             settings.api_secret)
    service = EgressService(settings, store, webhooks)

    # with Redis configured, the same process also records jobs livekit-server hands out over psrpc
    bus_worker = EgressWorker(settings, service, report_orphans=False) if settings.redis.configured else None

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        webhooks.start()
        if bus_worker is not None:
            await bus_worker.start()
        yield
        if bus_worker is not None:
            await bus_worker.drain()
        await service.shutdown()
        await webhooks.stop()

    app = FastAPI(title="pyegress", lifespan=lifespan)
    app.state.service = service
    app.include_router(egress_router(service, settings.api_key, settings.api_secret))
    app.include_router(rtcstack_router(service, settings.api_key, settings.api_secret, webhooks,
                                       settings.rtcstack_webhook_url_list))
    app.include_router(recordings_router(service, settings.api_key, settings.api_secret, service.storage))
    app.include_router(downloads_router(settings.api_secret, service.recordings_dir))
    app.include_router(realtimekit_router(RealtimeKitRecordings(service, RealtimeKitStore(store.engine)),
                                          settings.api_key, settings.api_secret, service.storage))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # Never a traceback on the wire; the log keeps it.
        log.exception("unhandled error on %s", request.url.path)
        return JSONResponse({"code": "internal", "msg": "internal error", "meta": {}}, status_code=500)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    return app
