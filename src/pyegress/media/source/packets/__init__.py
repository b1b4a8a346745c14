"""A room through the packet receiver: LiveKit's Go server SDK receives, pyegress records.

- ``receiver/``: the Go program (its own module, pinned in ``go.mod``/``go.sum``) that joins the
  room, runs LiveKit's jitter buffer and sync engine and writes encoded samples on a pipe;
- :mod:`.binary`: building and caching it; :mod:`.stream`: its process and framing;
- :mod:`.source`: :class:`~.source.PacketSource`, the :class:`~..base.Source` on top.
"""

from .source import BULK_FLUSH_MS, COMPOSITE_JITTER_MS, PacketSource

__all__ = ["BULK_FLUSH_MS", "COMPOSITE_JITTER_MS", "PacketSource"]
