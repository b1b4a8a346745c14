"""The receiver process of one egress and the frames it writes (``receiver/frames.go``, docs/receiver.md).

The worker starts the receiver, writes its settings as one JSON line on its stdin and then
commands (``subscribe``, ``unsubscribe``, ``dimensions``), one JSON line each. The receiver writes
frames on its stdout: a 16-byte little-endian header ``u8 type | u8 flags | u16 track |
i64 pts_ns | u32 length`` and ``length`` bytes: type 1 an encoded :class:`Sample`, type 2 an
event (a JSON object with ``"event"``). Closing its stdin makes it leave the room and exit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
from dataclasses import dataclass

from ..children import orphan_proof, terminate
from .binary import ensure_built

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<BBHqI")
_SAMPLE, _EVENT = 1, 2
_KEYFRAME, _LOSS = 1, 2
#: Larger frames are a broken stream, not media (a 4K keyframe is a few MB at most).
MAX_FRAME_BYTES = 64 << 20


class StreamError(Exception):
    """The receiver wrote something that is not a frame."""


@dataclass(slots=True)
class Sample:
    """One encoded sample of track number ``track``: a VP8/VP9 frame, H.264 access unit (Annex B),
    AV1 temporal unit or Opus packet, presented at ``pts_ns`` (ns on the receiver's session timeline,
    the sync engine's). ``keyframe``: decodable on its own (every audio sample is); ``loss``: samples
    of this track were lost just before it."""

    track: int
    pts_ns: int
    keyframe: bool
    loss: bool
    data: bytes


class ReceiverProcess:
    """One receiver: :meth:`start`, then :meth:`read` frames until it returns None (the receiver
    exited; :attr:`returncode` says how), :meth:`send` commands, :meth:`close` to leave."""

    def __init__(self, url: str, token: str, *, jitter_ms: int = 500) -> None:
        self._settings = {"url": url, "token": token, "jitter_ms": jitter_ms}
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Start the receiver (building it first if needed) and hand it its settings; the token goes
        through the pipe, never the command line.

        Raises:
            ReceiverUnavailable: there is no receiver binary and it cannot be built.
            OSError: it cannot be started.
        """
        binary = await asyncio.to_thread(ensure_built)
        self._proc = await asyncio.create_subprocess_exec(
            *orphan_proof([str(binary)]), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            limit=1 << 20)
        self._write(self._settings)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc is not None else None

    def _write(self, message: dict) -> None:
        stdin = self._proc.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.write(json.dumps(message).encode() + b"\n")

    def send(self, cmd: str, sid: str, **fields) -> None:
        """Send a command (``subscribe``/``unsubscribe``/``dimensions`` with ``width``, ``height``)."""
        self._write({"cmd": cmd, "sid": sid, **fields})

    async def read(self) -> Sample | dict | None:
        """The next frame: a :class:`Sample`, an event dict, or None once the receiver has exited.

        Raises:
            StreamError: the stream is corrupt (the receiver is then killed).
        """
        stdout = self._proc.stdout
        try:
            header = await stdout.readexactly(_HEADER.size)
        except asyncio.IncompleteReadError as e:
            if e.partial:
                await self._abort(f"stream cut inside a header ({len(e.partial)} bytes)")
            await self._proc.wait()
            return None
        kind, flags, track, pts, length = _HEADER.unpack(header)
        if length > MAX_FRAME_BYTES or kind not in (_SAMPLE, _EVENT):
            await self._abort(f"bad frame header type={kind} length={length}")
        try:
            payload = await stdout.readexactly(length)
        except asyncio.IncompleteReadError:
            await self._proc.wait()
            return None
        if kind == _SAMPLE:
            return Sample(track, pts, bool(flags & _KEYFRAME), bool(flags & _LOSS), payload)
        try:
            return json.loads(payload)
        except ValueError:
            await self._abort("an event that is not JSON")

    async def _abort(self, why: str) -> None:
        self._proc.kill()
        await self._proc.wait()
        raise StreamError(why)

    async def close(self, grace_s: float = 8.0) -> None:
        """Close its stdin (it leaves the room, writes the samples it still holds and exits) and wait
        for it to exit; SIGTERM after ``grace_s``. The caller keeps reading until :meth:`read` gives None."""
        if self._proc is None or self._proc.returncode is not None:
            return
        if self._proc.stdin is not None and not self._proc.stdin.is_closing():
            self._proc.stdin.close()
        try:
            await asyncio.wait_for(self._proc.wait(), grace_s)
        except asyncio.TimeoutError:
            await terminate(self._proc)
