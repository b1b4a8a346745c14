"""A small Chrome DevTools Protocol client: JSON messages over one websocket.

Protocol: https://chromedevtools.github.io/devtools-protocol/ (version 1.3).
A command is ``{"id", "method", "params", "sessionId"?}`` and gets a reply
with the same ``id`` holding ``result`` or ``error``; everything without an
``id`` is an event. Targets (tabs) are reached through the browser connection
with flattened sessions (``Target.attachToTarget(flatten=True)``): a command
for a tab carries that tab's ``sessionId``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from typing import Any, Callable

import websockets

log = logging.getLogger(__name__)


class CdpError(Exception):
    """A command answered with an ``error`` (``code``, ``message`` as the browser sent them)."""


class CdpConnection:
    """One DevTools websocket. ``send`` awaits a command's result; ``on`` registers event handlers.

    Handlers run on the event loop as ``handler(params, session_id)`` and must
    not block. ``closed`` is set when the websocket ends (the browser exited).
    """

    def __init__(self, ws) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._handlers: dict[str, list[Callable[[dict, str], None]]] = {}
        self.closed = asyncio.Event()
        self._reader = asyncio.create_task(self._read(), name="cdp-reader")

    @classmethod
    async def connect(cls, url: str) -> "CdpConnection":
        """Open ``ws://host:port/devtools/browser/<id>``; frames are unbounded (screenshots are large)."""
        return cls(await websockets.connect(url, max_size=None, ping_interval=None))

    def on(self, method: str, handler: Callable[[dict, str], None]) -> None:
        self._handlers.setdefault(method, []).append(handler)

    async def send(self, method: str, params: dict[str, Any] | None = None, session_id: str = "") -> dict:
        """Run ``method`` and return its ``result``.

        Raises:
            CdpError: the browser answered with an error.
            ConnectionError: the connection closed before the answer.
        """
        msg_id = next(self._ids)
        message: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session_id:
            message["sessionId"] = session_id
        future = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        try:
            await self._ws.send(json.dumps(message))
        except websockets.ConnectionClosed:
            self._pending.pop(msg_id, None)
            raise ConnectionError(f"DevTools connection closed before {method}") from None
        return await future

    def send_nowait(self, method: str, params: dict[str, Any] | None = None, session_id: str = "") -> None:
        """Fire a command whose answer does not matter (e.g. acknowledging a screencast frame)."""
        task = asyncio.ensure_future(self.send(method, params, session_id))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieve, never raise

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                msg = json.loads(raw)
                if "id" in msg:
                    future = self._pending.pop(msg["id"], None)
                    if future is None or future.done():
                        continue
                    if "error" in msg:
                        err = msg["error"]
                        future.set_exception(CdpError(f"{err.get('message')} (code {err.get('code')})"))
                    else:
                        future.set_result(msg.get("result", {}))
                    continue
                for handler in self._handlers.get(msg.get("method", ""), ()):
                    try:
                        handler(msg.get("params", {}), msg.get("sessionId", ""))
                    except Exception:  # one bad handler must not stop the connection
                        log.exception("DevTools event handler for %s failed", msg.get("method"))
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed.set()
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("DevTools connection closed"))
            self._pending.clear()

    async def close(self) -> None:
        await self._ws.close()
        await self._reader
