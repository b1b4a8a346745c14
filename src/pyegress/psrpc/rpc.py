"""psrpc over Redis: the RPC transport livekit-server uses to reach egress workers.

Wire rules (livekit/psrpc v0.7.2, written up in ``docs/psrpc.md``):

- Only Redis PUBLISH/SUBSCRIBE, plus ``SET <base64(sha256(payload))> <x> EX 5 NX``
  as the lock that makes a queue-subscribed request go to one process.
- Every payload is ``internal.Msg{type_url, value}`` (Any-compatible) wrapping
  ``internal.Request``/``Response``/``ClaimRequest``/``ClaimResponse``; the RPC's
  own message travels as raw bytes in ``raw_request``/``raw_response``.
- Channel names are the "Legacy" form: parts joined by ``|``, every rune outside
  ``[0-9A-Za-z_]`` written ``u+XXXX``; an empty topic leaves no part.
- A server bids for a request with a ClaimRequest (its affinity) on the
  client's ``CLAIM`` channel; the client names the winner with a ClaimResponse
  on ``RCLAIM``; only the winner answers, on the client's ``RES`` channel.
- Never publish a message of the wrong type on a channel: the Go receiver panics.

Times on the wire are Unix ns.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import secrets
import string
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

import redis.asyncio as aioredis
from google.protobuf.message import DecodeError, Message

from ..config import RedisConfig
from .pb import psrpc_internal_pb2 as pb

log = logging.getLogger(__name__)

_TYPE_PREFIX = "type.googleapis.com/"
_ALNUM = string.ascii_letters + string.digits
LOCK_EXPIRY_S = 5  # psrpc's lockExpiration


def new_id(prefix: str) -> str:
    """A psrpc ID: ``prefix`` + 12 characters of ``[A-Za-z0-9]`` (psrpc ``pkg/rand``), e.g. ``CLI_…``."""
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(12))


def _sanitise(part: str) -> str:
    out = []
    for ch in part:
        if ch.isascii() and (ch.isalnum() or ch == "_"):
            out.append(ch)
        elif ord(ch) <= 0xFFFF:
            out.append(f"u+{ord(ch):04x}")
        else:
            out.append(f"U+{ord(ch):08x}")
    return "".join(out)


def channel(*parts: str) -> str:
    """A Legacy channel name from its parts (service, method or client ID, topic…, suffix).

    Empty parts leave no trace, as an empty topic does in psrpc ``pkg/info/channels.go``.
    """
    return "|".join(_sanitise(p) for p in parts if p)


class PsrpcError(Exception):
    """An RPC failed: ``code`` is a psrpc error code (``unavailable``, ``not_found``, ...)."""

    def __init__(self, code: str, msg: str) -> None:
        super().__init__(f"{code}: {msg}")
        self.code, self.msg = code, msg


def wrap(message: Message) -> bytes:
    """``message`` (an ``internal.*`` message) as the Msg envelope published on Redis."""
    return pb.Msg(type_url=_TYPE_PREFIX + message.DESCRIPTOR.full_name,
                  value=message.SerializeToString()).SerializeToString()


def unwrap(payload: bytes, expected: type[Message]) -> Message | None:
    """Decode an envelope; None if it is not an ``expected`` (psrpc drops unknown types too)."""
    try:
        msg = pb.Msg.FromString(payload)
        if msg.type_url.rsplit("/", 1)[-1] != expected.DESCRIPTOR.full_name:
            return None
        return expected.FromString(msg.value)
    except DecodeError:
        return None


Handler = Callable[[bytes], Awaitable[None]]


class RedisBus:
    """One Redis connection for publishing and one Pub/Sub connection for every subscription.

    :meth:`subscribe` returns once Redis confirmed the subscription, so a
    request published right after cannot be missed (``docs/psrpc.md`` §1).
    """

    def __init__(self, config: RedisConfig) -> None:
        host, _, port = config.address.rpartition(":")
        self.redis = aioredis.Redis(host=host or "127.0.0.1", port=int(port or 6379), db=config.db,
                                    username=config.username or None, password=config.password or None,
                                    ssl=config.use_tls)
        self._pubsub = self.redis.pubsub()
        self._handlers: dict[str, Handler] = {}
        self._confirmed: dict[str, asyncio.Event] = {}
        self._reader: asyncio.Task | None = None
        self._sub_lock = asyncio.Lock()

    async def start(self) -> None:
        """Connect (raises ``redis.exceptions.ConnectionError`` if Redis is unreachable)."""
        await self.redis.ping()
        self._reader = asyncio.create_task(self._read(), name="psrpc-reader")

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        await self._pubsub.aclose()
        await self.redis.aclose()

    async def subscribe(self, name: str, handler: Handler) -> None:
        """Deliver every payload published on ``name`` to ``handler`` (run as its own task)."""
        async with self._sub_lock:
            self._handlers[name] = handler
            confirmed = self._confirmed[name] = asyncio.Event()
            await self._pubsub.subscribe(name)
        await asyncio.wait_for(confirmed.wait(), 5)

    async def unsubscribe(self, *names: str) -> None:
        async with self._sub_lock:
            for name in names:
                self._handlers.pop(name, None)
                self._confirmed.pop(name, None)
            if names:
                await self._pubsub.unsubscribe(*names)

    async def publish(self, name: str, message: Message) -> None:
        await self.redis.publish(name, wrap(message))

    async def lock(self, payload: bytes) -> bool:
        """psrpc's queue lock: True for the one process that may handle this payload."""
        key = base64.b64encode(hashlib.sha256(payload).digest()).decode()
        return bool(await self.redis.set(key, str(secrets.randbelow(2**62)), ex=LOCK_EXPIRY_S, nx=True))

    async def _read(self) -> None:
        while True:
            if self._pubsub.connection is None:  # nothing subscribed yet
                await asyncio.sleep(0.05)
                continue
            try:
                message = await self._pubsub.get_message(ignore_subscribe_messages=False, timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # connection loss: redis-py reconnects and resubscribes on the next read
                log.warning("psrpc: Redis read failed: %s", e)
                await asyncio.sleep(0.5)
                continue
            if message is None:
                continue
            name = message["channel"].decode()
            if message["type"] == "subscribe":
                if name in self._confirmed:
                    self._confirmed[name].set()
            elif message["type"] == "message":
                handler = self._handlers.get(name)
                if handler is not None:
                    asyncio.create_task(self._run(handler, message["data"], name))

    @staticmethod
    async def _run(handler: Handler, payload: bytes, name: str) -> None:
        try:
            await handler(payload)
        except Exception:  # one bad message must not stop the bus
            log.exception("psrpc: handler for %s failed", name)


@dataclass
class Incoming:
    """A request a server received: ``payload`` is the RPC's raw request bytes."""

    request: pb.Request
    payload: bytes


RequestHandler = Callable[[bytes], Awaitable[Message]]
AffinityFn = Callable[[bytes], float]


class RpcServer:
    """The server role of psrpc: answers requests on ``<Service>|<Method>|<topic>|REQ``.

    Handlers take the raw request bytes and return the reply message, or raise
    :class:`PsrpcError` (sent back as the Response's ``error``/``code``).
    """

    def __init__(self, bus: RedisBus, server_id: str | None = None) -> None:
        self.bus = bus
        self.server_id = server_id or new_id("SRV_")
        self._claims: dict[str, asyncio.Future] = {}  # request ID -> winner's server ID

    async def register(self, service: str, method: str, topic: str, handler: RequestHandler, *,
                       affinity: AffinityFn | None = None, queue: bool = False, multi: bool = False) -> None:
        """Serve ``method`` on ``topic``.

        ``multi``: every server answers at once (no claim). Otherwise the server
        bids with ``affinity(request)`` (1.0 without a function; < 0 stays
        silent) and answers only if chosen. ``queue``: one process per payload
        (the Redis lock) before bidding.
        """
        async def on_request(payload: bytes) -> None:
            req = unwrap(payload, pb.Request)
            if req is None or time.time_ns() >= req.expiry:
                return
            if queue and not await self.bus.lock(payload):
                return
            if multi:
                await self._answer(service, req, handler)
                return
            bid = affinity(req.raw_request) if affinity else 1.0
            if bid < 0:
                return
            winner = asyncio.get_running_loop().create_future()
            self._claims[req.request_id] = winner
            try:
                await self.bus.publish(channel(service, req.client_id, "CLAIM"),
                                       pb.ClaimRequest(request_id=req.request_id, server_id=self.server_id,
                                                       affinity=bid))
                chosen = await asyncio.wait_for(winner, max(0.0, (req.expiry - time.time_ns()) / 1e9))
            except asyncio.TimeoutError:
                return
            finally:
                self._claims.pop(req.request_id, None)
            if chosen == self.server_id:
                await self._answer(service, req, handler)

        async def on_claim_response(payload: bytes) -> None:
            resp = unwrap(payload, pb.ClaimResponse)
            if resp is not None and (fut := self._claims.get(resp.request_id)) and not fut.done():
                fut.set_result(resp.server_id)

        if not multi:
            await self.bus.subscribe(channel(service, method, topic, "RCLAIM"), on_claim_response)
        await self.bus.subscribe(channel(service, method, topic, "REQ"), on_request)

    async def unregister(self, service: str, method: str, topic: str) -> None:
        await self.bus.unsubscribe(channel(service, method, topic, "REQ"), channel(service, method, topic, "RCLAIM"))

    async def _answer(self, service: str, req: pb.Request, handler: RequestHandler) -> None:
        resp = pb.Response(request_id=req.request_id, server_id=self.server_id)
        try:
            resp.raw_response = (await handler(req.raw_request)).SerializeToString()
        except PsrpcError as e:
            resp.error, resp.code = e.msg or e.code, e.code
        except DecodeError as e:
            resp.error, resp.code = f"cannot decode the request: {e}", "malformed_request"
        except Exception as e:  # unexpected: reported as psrpc does for plain errors
            log.exception("psrpc: %s handler failed", service)
            resp.error, resp.code = str(e) or type(e).__name__, "internal"
        resp.sent_at = time.time_ns()
        await self.bus.publish(channel(service, req.client_id, "RES"), resp)


class RpcClient:
    """The client role of psrpc for queue+claim methods (how a worker calls livekit-server's IOInfo).

    Takes the first claim (psrpc's AcceptFirstAvailable) within
    ``selection_timeout_s``, then waits for the Response until ``timeout_s``.
    """

    def __init__(self, bus: RedisBus, service: str, client_id: str | None = None) -> None:
        self.bus, self.service = bus, service
        self.client_id = client_id or new_id("CLI_")
        self._claims: dict[str, asyncio.Future] = {}
        self._responses: dict[str, asyncio.Future] = {}

    async def start(self) -> None:
        await self.bus.subscribe(channel(self.service, self.client_id, "CLAIM"), self._on_claim)
        await self.bus.subscribe(channel(self.service, self.client_id, "RES"), self._on_response)

    async def _on_claim(self, payload: bytes) -> None:
        claim = unwrap(payload, pb.ClaimRequest)
        if claim is not None and (fut := self._claims.get(claim.request_id)) and not fut.done():
            fut.set_result(claim.server_id)

    async def _on_response(self, payload: bytes) -> None:
        resp = unwrap(payload, pb.Response)
        if resp is not None and (fut := self._responses.get(resp.request_id)) and not fut.done():
            fut.set_result(resp)

    async def call(self, method: str, request: Message, *, timeout_s: float = 3.0,
                   selection_timeout_s: float = 1.0) -> bytes:
        """Send ``request`` to ``<Service>|<method>|REQ``; returns the raw reply bytes.

        Raises:
            PsrpcError: ``unavailable`` when no server claims it, ``deadline_exceeded``
                when the answer is late, or the server's own error code.
        """
        loop = asyncio.get_running_loop()
        request_id = new_id("REQ_")
        now = time.time_ns()
        claimed, answered = loop.create_future(), loop.create_future()
        self._claims[request_id], self._responses[request_id] = claimed, answered
        try:
            await self.bus.publish(channel(self.service, method, "REQ"), pb.Request(
                request_id=request_id, client_id=self.client_id, sent_at=now, expiry=now + int(timeout_s * 1e9),
                raw_request=request.SerializeToString()))
            try:
                server_id = await asyncio.wait_for(claimed, selection_timeout_s)
            except asyncio.TimeoutError:
                raise PsrpcError("unavailable", "no response from servers") from None
            await self.bus.publish(channel(self.service, method, "RCLAIM"),
                                   pb.ClaimResponse(request_id=request_id, server_id=server_id))
            remaining = timeout_s - (time.time_ns() - now) / 1e9
            try:
                resp: pb.Response = await asyncio.wait_for(answered, max(0.01, remaining))
            except asyncio.TimeoutError:
                raise PsrpcError("deadline_exceeded", "request timed out") from None
            if resp.error:
                raise PsrpcError(resp.code or "unknown", resp.error)
            return resp.raw_response
        finally:
            self._claims.pop(request_id, None)
            self._responses.pop(request_id, None)
