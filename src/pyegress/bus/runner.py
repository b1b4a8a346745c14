"""Running the egress worker: as its own process (``pyegress worker``) or inside ``serve``."""

from __future__ import annotations

import asyncio
import logging
import signal

from ..config import Settings
from ..metrics import serve_metrics
from ..service.egress_service import EgressService
from ..database.egress_store import EgressStore
from .egress_worker import EgressWorker

log = logging.getLogger(__name__)


async def run_worker(settings: Settings) -> None:
    """Claim and record egress jobs until SIGTERM/SIGINT, then drain (finish and report active egresses).

    Webhooks are livekit-server's to send (it gets every EgressInfo change over IOInfo). With
    ``prometheus_port`` set, metrics are served meanwhile (:func:`~pyegress.metrics.serve_metrics`).
    """
    service = EgressService(settings, EgressStore(settings.database_url), webhooks=None)
    metrics = serve_metrics(settings, service)
    service.recover()  # a previous run's egresses end (and are reported by worker.start)
    service.pool.start()
    worker = EgressWorker(settings, service)
    await worker.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"pyegress worker {worker.server_id} ready", flush=True)  # tests and scripts wait for this line
    await stop.wait()
    log.info("draining: no new jobs; finishing %d active egress(es)", len(service.active_egress_ids()))
    await worker.drain()
    if metrics is not None:
        metrics.close()
