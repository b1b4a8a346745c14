"""pyegress as an egress worker of livekit-server, over psrpc/Redis.

livekit-server's own Egress API and its autoegress send ``StartEgress`` to
whichever worker claims it (``EgressInternal``); stop and stream updates go to
the worker running the egress (``EgressHandler``, topic = egress ID); the
worker reports every EgressInfo change to livekit-server's ``IOInfo`` service,
which stores it (for ListEgress) and sends the egress webhooks. Protocol:
``docs/psrpc.md`` §4–§6 (livekit-server v1.13.5, psrpc v0.7.2, egress v1.14.1).
"""

from __future__ import annotations

import asyncio
import logging

from livekit.protocol import egress as eg

from .. import metrics
from ..config import Settings
from ..errors import EgressError
from ..service.egress_service import EgressService, StartOptions
from ..database.egress_store import ACTIVE_STATUSES
from .admission import request_cost
from ..psrpc.pb import rpc_egress_pb2 as rpc
from ..psrpc.rpc import PsrpcError, RedisBus, RpcClient, RpcServer

log = logging.getLogger(__name__)
S = eg.EgressStatus

INTERNAL, HANDLER, IOINFO = "EgressInternal", "EgressHandler", "IOInfo"
IO_CREATE_TIMEOUT_S = 15.0  # the Go egress's io_create_timeout
IO_UPDATE_TIMEOUT_S = 30.0  # io_update_timeout
IO_RETRY_CAP_S = 60.0
_RETRIED = ("unavailable", "deadline_exceeded")
# Twirp codes EgressError uses that psrpc spells differently
_PSRPC_CODES = {"malformed": "malformed_request", "bad_route": "invalid_argument"}


class IOInfoReporter:
    """Sends EgressInfo changes to livekit-server's ``IOInfo``, in order per egress.

    The first report of an egress is ``CreateEgress`` (livekit-server stores it
    and sends ``egress_started``); later ones are ``UpdateEgress`` with the whole
    info, one per status change (``egress_updated`` for ACTIVE/ENDING,
    ``egress_ended`` for the final status). Calls that time out or find no
    server are retried with backoff from 250 ms, doubling, capped at 60 s.
    """

    def __init__(self, client: RpcClient) -> None:
        self.client = client
        self._queues: dict[str, asyncio.Queue] = {}
        self._created: dict[str, asyncio.Future] = {}
        self._last_status: dict[str, int] = {}
        self._tasks: set[asyncio.Task] = set()

    def report(self, info: eg.EgressInfo, *, known: bool = False) -> None:
        """Queue ``info`` (copied) if it is new or its status changed; ``known``: livekit-server already
        has the egress (a previous run created it), so the first report is an UpdateEgress."""
        egress_id = info.egress_id
        if self._last_status.get(egress_id) == info.status and info.status in ACTIVE_STATUSES:
            return  # progress alone: livekit-server would only repeat egress_updated
        self._last_status[egress_id] = info.status
        snapshot = eg.EgressInfo()
        snapshot.CopyFrom(info)
        queue = self._queues.get(egress_id)
        if queue is None:
            queue = self._queues[egress_id] = asyncio.Queue()
            self._created[egress_id] = asyncio.get_running_loop().create_future()
            task = asyncio.create_task(self._send_all(egress_id, queue, created=known), name=f"ioinfo-{egress_id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        queue.put_nowait(snapshot)

    async def created(self, egress_id: str) -> None:
        """Wait until livekit-server has the egress (CreateEgress answered).

        Raises:
            PsrpcError: CreateEgress failed for good.
        """
        await asyncio.shield(self._created[egress_id])

    async def flush(self) -> None:
        """Wait until every queued report was sent (or given up)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _send_all(self, egress_id: str, queue: asyncio.Queue, *, created: bool) -> None:
        first = not created
        created = self._created[egress_id]
        if not first:
            created.set_result(None)
        while True:
            info: eg.EgressInfo = await queue.get()
            try:
                if first:
                    await self._call("CreateEgress", info, IO_CREATE_TIMEOUT_S)
                    created.set_result(None)
                    first = False
                else:
                    await self._call("UpdateEgress", info, IO_UPDATE_TIMEOUT_S)
            except PsrpcError as e:
                log.error("IOInfo: %s of %s failed: %s", "CreateEgress" if first else "UpdateEgress", egress_id, e)
                if first:
                    created.set_exception(e)
                    created.exception()  # retrieved here; awaiters still get it
                    return
            if info.status not in ACTIVE_STATUSES and queue.empty():
                self._queues.pop(egress_id, None)
                self._created.pop(egress_id, None)
                self._last_status.pop(egress_id, None)
                return

    async def _call(self, method: str, info: eg.EgressInfo, budget_s: float) -> None:
        delay, loop = 0.25, asyncio.get_running_loop()
        deadline = loop.time() + budget_s if method == "CreateEgress" else None
        while True:
            try:
                await self.client.call(method, info, timeout_s=min(budget_s, IO_UPDATE_TIMEOUT_S))
                return
            except PsrpcError as e:
                if e.code not in _RETRIED or (deadline is not None and loop.time() + delay > deadline):
                    raise
                log.warning("IOInfo.%s for %s: %s; retrying in %.2f s", method, info.egress_id, e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, IO_RETRY_CAP_S)


class EgressWorker:
    """Claims egress jobs from livekit-server and runs them with the local :class:`EgressService`.

    ``report_orphans``: tell livekit-server about egresses a previous run left
    unfinished (right for ``pyegress worker``, whose egresses all came from it).
    Bids on ``StartEgress`` as the Go egress does: −1 (silent) when draining or
    over the CPU budget, 0.5 when idle, 1.0 when busy with room to spare (which
    packs jobs onto busy workers). A retried StartEgress for an egress this
    worker already runs gets the existing EgressInfo, not a second recording.
    """

    def __init__(self, settings: Settings, service: EgressService, *, report_orphans: bool = True) -> None:
        self.settings = settings
        self.service = service
        self.bus = RedisBus(settings.redis)
        self.server = RpcServer(self.bus)
        self.io = IOInfoReporter(RpcClient(self.bus, IOINFO))
        self.admission = service.admission  # shared with the service's own API starts
        self.draining = False
        # only a pure worker's egresses all came from livekit-server; serve's own API starts others
        self.report_orphans = report_orphans
        self._handled: set[str] = set()  # egresses whose EgressHandler topics are registered
        service.add_listener(self._on_change)

    @property
    def server_id(self) -> str:
        return self.server.server_id

    async def start(self) -> None:
        """Connect to Redis and start claiming (raises ``redis`` connection errors)."""
        await self.bus.start()
        await self.io.client.start()
        if self.report_orphans:  # a previous run's egresses: livekit-server must learn they failed
            for info in self.service.recover():
                await self._report_orphan(info)
        topic = self.settings.cluster_id
        await self.server.register(INTERNAL, "StartEgress", topic, self._start_egress, affinity=self._affinity)
        await self.server.register(INTERNAL, "ListActiveEgress", topic, self._list_active, multi=True)
        log.info("egress worker %s claiming jobs (%.1f cores, max utilization %.2f)", self.server_id,
                 self.admission.cores, self.admission.max_utilization)

    async def _report_orphan(self, info: eg.EgressInfo) -> None:
        # its recording process may have outlived the last run and reported the end itself
        try:
            known = eg.EgressInfo.FromString(await self.io.client.call(
                "GetEgress", rpc.GetEgressRequest(egress_id=info.egress_id), timeout_s=5))
            if known.status not in ACTIVE_STATUSES:
                return
        except PsrpcError as e:
            if e.code != "not_found":
                log.warning("IOInfo.GetEgress %s: %s; reporting it failed anyway", info.egress_id, e)
        self.io.report(info, known=True)

    async def drain(self) -> None:
        """Graceful shutdown: stop claiming, finish every active egress, report it, disconnect."""
        self.draining = True
        await self.server.unregister(INTERNAL, "StartEgress", self.settings.cluster_id)
        await self.service.shutdown()
        await self.io.flush()
        await self.bus.close()

    # ---- StartEgress ------------------------------------------------------
    def _affinity(self, raw: bytes) -> float:
        if self.draining:
            return -1
        try:
            req = rpc.StartEgressRequest.FromString(raw)
        except Exception:  # undecodable: let the handler answer malformed_request
            return 1.0
        if req.egress_id and self.service.get_info(req.egress_id) is not None:
            return 1.0  # a retry of an egress we run: claim it so the retry gets our answer
        cost = request_cost(req, self.settings.cpu_cost)
        if not self.admission.can_accept(cost):
            log.info("declining %s: needs %.2f cores, %.2f available", req.egress_id, cost,
                     self.admission.available())
            metrics.ADMISSION_REFUSALS.labels(metrics.egress_type(req), "bid").inc()
            return -1
        return 1.0 if self.admission.active else 0.5

    async def _start_egress(self, raw: bytes) -> eg.EgressInfo:
        req = rpc.StartEgressRequest.FromString(raw)
        if not req.egress_id:
            raise PsrpcError("invalid_argument", "request has missing or invalid field: egress_id")
        existing = self.service.get_info(req.egress_id)
        if existing is not None:
            return existing
        if self.draining:
            raise PsrpcError("unavailable", "server is shutting down")
        cost = request_cost(req, self.settings.cpu_cost)
        if not self.admission.admit(req.egress_id, cost):
            metrics.ADMISSION_REFUSALS.labels(metrics.egress_type(req), "claim").inc()
            raise PsrpcError("unavailable", "not enough CPU")
        await self._register_handler(req.egress_id)
        opts = StartOptions(egress_id=req.egress_id, room_id=req.room_id, token=req.token, ws_url=req.ws_url,
                            webhooks=False)
        kind = req.WhichOneof("request")
        starts = {"room_composite": self.service.start_room_composite, "participant": self.service.start_participant,
                  "track_composite": self.service.start_track_composite, "track": self.service.start_track,
                  "web": self.service.start_web, "egress": self.service.start_egress}
        try:
            if kind not in starts:
                raise EgressError("unimplemented", f"{kind or 'request'}: this egress type is not supported")
            info = await starts[kind](getattr(req, kind), opts)
            await self.io.created(req.egress_id)
        except EgressError as e:
            await self._forget(req.egress_id)
            raise PsrpcError(_PSRPC_CODES.get(e.code, e.code), e.msg) from None
        except PsrpcError:
            await self.service.stop_egress(eg.StopEgressRequest(egress_id=req.egress_id))
            raise
        return info

    async def _list_active(self, raw: bytes) -> rpc.ListActiveEgressResponse:
        return rpc.ListActiveEgressResponse(egress_ids=self.service.active_egress_ids())

    # ---- per-egress: StopEgress, UpdateStream -----------------------------
    async def _register_handler(self, egress_id: str) -> None:
        await self.server.register(HANDLER, "StopEgress", egress_id, self._stop_egress, queue=True)
        await self.server.register(HANDLER, "UpdateStream", egress_id, self._update_stream, queue=True)
        self._handled.add(egress_id)

    async def _forget(self, egress_id: str) -> None:
        self.admission.release(egress_id)
        if egress_id in self._handled:
            self._handled.discard(egress_id)
            await self.server.unregister(HANDLER, "StopEgress", egress_id)
            await self.server.unregister(HANDLER, "UpdateStream", egress_id)

    async def _stop_egress(self, raw: bytes) -> eg.EgressInfo:
        return await self._call_service(self.service.stop_egress, eg.StopEgressRequest.FromString(raw))

    async def _update_stream(self, raw: bytes) -> eg.EgressInfo:
        return await self._call_service(self.service.update_stream, eg.UpdateStreamRequest.FromString(raw))

    @staticmethod
    async def _call_service(method, request) -> eg.EgressInfo:
        try:
            return await method(request)
        except EgressError as e:
            raise PsrpcError(_PSRPC_CODES.get(e.code, e.code), e.msg) from None

    def _on_change(self, info: eg.EgressInfo) -> None:
        if not self.service.is_external(info.egress_id):
            return  # started through pyegress's own API: not livekit-server's to know
        self.io.report(info)
        if info.status not in ACTIVE_STATUSES:
            asyncio.get_running_loop().create_task(self._forget(info.egress_id))
