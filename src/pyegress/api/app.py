"""The ASGI application: every API dialect on one FastAPI app, sharing one EgressService."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from ..bus.egress_worker import EgressWorker
from ..config import Settings
from ..metrics import serve_metrics
from ..service.egress_service import EgressService
from ..service.previews import Previews
from ..database.egress_store import EgressStore
from ..database.realtimekit_store import RealtimeKitStore
from ..database.webhook_store import WebhookStore
from ..dialects.links import DownloadLinks
from ..dialects.realtimekit import RealtimeKitRecordings
from ..dialects.recordings import Recordings
from ..dialects.rtcstack import RtcstackRecordings
from ..webhooks.sender import WebhookSender
from .errors import install_error_handlers
from .limits import BodyLimit
from .preview import preview_router
from .rest.downloads import downloads_router
from .rest.realtimekit import realtimekit_router
from .rest.recordings import recordings_router
from .rest.rtcstack import rtcstack_router
from .twirp import egress_router


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
        metrics = serve_metrics(settings, service)  # first: a port taken stops the start before anything runs
        service.recover()  # a previous run's egresses end here, once every dialect listens
        service.pool.start()
        webhooks.start()
        if bus_worker is not None:
            await bus_worker.start()
        yield
        if bus_worker is not None:
            await bus_worker.drain()
        await service.shutdown()
        await webhooks.stop()
        if metrics is not None:
            metrics.close()

    app = FastAPI(title="pyegress", lifespan=lifespan)
    app.state.service = service
    app.include_router(egress_router(service, settings.api_key, settings.api_secret))
    app.include_router(preview_router(service, Previews(service.jobs), settings.api_key, settings.api_secret))
    rtcstack = RtcstackRecordings(service, webhooks, settings.rtcstack_webhook_url_list)
    app.include_router(rtcstack_router(rtcstack, settings.api_key, settings.api_secret))
    links = DownloadLinks(settings.public_base_url, settings.api_secret, service.storage)
    app.include_router(recordings_router(Recordings(service, links), settings.api_key, settings.api_secret))
    app.include_router(downloads_router(settings.api_secret, service.recordings_dir))
    app.include_router(realtimekit_router(RealtimeKitRecordings(service, RealtimeKitStore(store.engine), links),
                                          settings.api_key, settings.api_secret))
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    return app
