"""Following egresses as they run: Ctrl-C as a request to stop, and polling ListEgress until an egress ends."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

from livekit import api
from livekit.protocol import egress as eg

from .display import TERMINAL, status_name

POLL_INTERVAL_S = 1.0


class Interrupts:
    """While entered (in a running event loop), SIGINT and SIGTERM are counted instead of raising
    KeyboardInterrupt or ending the process, so a command can stop an egress and wait for its end.

    ``count`` is how many arrived; :meth:`sleep` returns early when one arrives.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.count = 0
        self._arrived = asyncio.Event()

    def __enter__(self) -> "Interrupts":
        loop = asyncio.get_running_loop()
        for sig in self.SIGNALS:
            loop.add_signal_handler(sig, self._on_signal)
        return self

    def __exit__(self, *exc) -> None:
        loop = asyncio.get_running_loop()
        for sig in self.SIGNALS:
            loop.remove_signal_handler(sig)

    def _on_signal(self) -> None:
        self.count += 1
        self._arrived.set()

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if a signal arrives meanwhile."""
        try:
            await asyncio.wait_for(self._arrived.wait(), seconds)
        except asyncio.TimeoutError:
            pass
        self._arrived.clear()


class StillRunning(Exception):
    """A second Ctrl-C: the caller gave up waiting; ``info`` is the egress as last seen."""

    def __init__(self, info: eg.EgressInfo) -> None:
        super().__init__(info.egress_id)
        self.info = info


async def fetch(egress: api.EgressService, egress_id: str) -> eg.EgressInfo:
    """The EgressInfo of ``egress_id`` from ListEgress.

    Raises:
        api.TwirpError: the server's error, or ``not_found`` (status 404) when it no longer lists the egress.
    """
    items = (await egress.list_egress(api.ListEgressRequest(egress_id=egress_id))).items
    if not items:
        raise api.TwirpError("not_found", f"egress {egress_id} is not listed (any more)", status=404)
    return items[0]


async def follow(egress: api.EgressService, info: eg.EgressInfo, interrupts: Interrupts,
                 on_update: Callable[[eg.EgressInfo], None], *, stop_requested: bool = False) -> eg.EgressInfo:
    """Poll ``info``'s egress every second until it ends; returns its terminal EgressInfo.

    Unless the stop was ``stop_requested`` already, the first interrupt sends StopEgress; an interrupt after
    the stop was asked for gives up waiting. Each EgressInfo seen (StopEgress's reply too) goes to ``on_update``.

    Raises:
        StillRunning: the caller gave up waiting before the egress ended.
        api.TwirpError: the server's error for ListEgress, or for StopEgress other than ``failed_precondition``
            (the egress was ending or ended already).
    """
    stop_sent = stop_requested
    while info.status not in TERMINAL:
        if interrupts.count > (0 if stop_requested else 1):
            raise StillRunning(info)
        if interrupts.count and not stop_sent:
            stop_sent = True
            try:
                info = await egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
                on_update(info)
            except api.TwirpError as e:
                if e.code != "failed_precondition":
                    raise
        await interrupts.sleep(POLL_INTERVAL_S)
        info = await fetch(egress, info.egress_id)
        on_update(info)
    return info


def still_running_message(info: eg.EgressInfo) -> str:
    """What a second Ctrl-C leaves behind, and how to look at it later."""
    return (f"stopped waiting: {info.egress_id} is {status_name(info)}; "
            f"`pyegress egress list --id {info.egress_id}` shows how it ends")
