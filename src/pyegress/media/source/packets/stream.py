"""The receiver process of one egress and the frames it writes (``receiver/frames.go``, docs/receiver.md).

The worker starts the receiver, writes its settings as one JSON line on its stdin and then
commands (``subscribe``, ``unsubscribe``, ``dimensions``), one JSON line each. The receiver writes
frames on its stdout: a 16-byte little-endian header ``u8 type | u8 flags | u16 track |
i64 pts_ns | u32 length`` and ``length`` bytes: type 1 an encoded :class:`Sample`, type 2 an
event (a JSON object with ``"event"``). Samples come in batches (``flush_ms``), events at once; a
read takes whatever has arrived, since each wakeup costs more than the frames it brings. Closing
its stdin makes it leave the room and exit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
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
#: Most bytes taken from the pipe at once (more than a batch of samples usually holds).
READ_BYTES = 1 << 20
#: GODEBUG for the receiver. Go's sysmon thread parks whenever every P is idle, and every system call
#: (each packet's recvmsg) wakes it again: three context switches per packet. With a ``schedtrace``
#: period (ms) longer than any egress it never parks and polls every 10 ms instead, which halves the
#: receiver's context switches and takes a third off its CPU for four Opus tracks (docs/receiver.md).
GODEBUG = "schedtrace=2000000000"
#: How late the kernel may fire the receiver's timers once it is in the room (ms, prctl(2)
#: PR_SET_TIMERSLACK). Packets still wake it at once; sysmon's 10 ms polls and the runtime's timers
#: wait up to this for a wakeup they can share, which takes a third off one Opus track's context
#: switches (docs/receiver.md). Nothing the receiver times needs better: its first NACK waits 55 ms,
#: the next ones 110 ms, its batches ``flush_ms`` (20 ms or more), and a sample up to ``jitter_ms``.
TIMER_SLACK_MS = 20


class StreamError(Exception):
    """The receiver wrote something that is not a frame."""


def receiver_env(environ) -> dict[str, str]:
    """The receiver's environment: ``environ`` with :data:`GODEBUG` added, unless it sets ``schedtrace``."""
    env = dict(environ)
    godebug = env.get("GODEBUG", "")
    if "schedtrace=" not in godebug:
        env["GODEBUG"] = f"{godebug},{GODEBUG}" if godebug else GODEBUG
    return env


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


class KeyframeGate:
    """Which of a video track's samples can be used: after a lost sample, or a :meth:`restart` (samples
    were dropped on purpose), none until a keyframe, since a picture whose reference is missing
    decodes to garbage. ``waiting``: the first sample must be a keyframe too; :attr:`skipped` counts
    what was left out."""

    def __init__(self, waiting: bool = True) -> None:
        self.waiting = waiting
        self.skipped = 0

    def restart(self) -> None:
        self.waiting = True

    def admit(self, sample: Sample) -> bool:
        """Whether ``sample`` can be used (it is counted in :attr:`skipped` if not)."""
        if sample.loss:
            self.waiting = True
        if self.waiting and not sample.keyframe:
            self.skipped += 1
            return False
        self.waiting = False
        return True


class ReceiverProcess:
    """One receiver: :meth:`start`, then :meth:`read` frames until it returns None (the receiver
    exited; :attr:`returncode` says how), :meth:`send` commands, :meth:`close` to leave.
    ``flush_ms``: how long the receiver may hold a sample to send it with the next ones (0: its
    default, 20 ms); a recording that only writes files can let them wait longer, for fewer wakeups.
    ``audio_only``: the egress subscribes to no video, so the receiver leaves out the RTP interceptors
    only video needs (docs/receiver.md). ``timer_slack_ms``: :data:`TIMER_SLACK_MS` (0: the kernel's
    default, 50 µs)."""

    def __init__(self, url: str, token: str, *, jitter_ms: int = 500, flush_ms: int = 0,
                 audio_only: bool = False, timer_slack_ms: int = TIMER_SLACK_MS) -> None:
        self._settings = {"url": url, "token": token, "jitter_ms": jitter_ms, "flush_ms": flush_ms,
                          "audio_only": audio_only, "timer_slack_ms": timer_slack_ms}
        self._proc: asyncio.subprocess.Process | None = None
        self._buffer = b""  # received, not yet a whole frame
        self._corrupt = ""  # why the stream cannot be read on, once the frames before that are read

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
            limit=1 << 20, env=receiver_env(os.environ))
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

    async def read(self) -> list[Sample | dict] | None:
        """The frames that have arrived, in order (at least one): :class:`Sample` s and event dicts;
        None once the receiver has exited.

        Raises:
            StreamError: the stream is corrupt (the receiver is then killed).
        """
        while True:
            frames = self._frames()
            if frames:
                return frames
            if self._corrupt:
                await self._abort(self._corrupt)
            chunk = await self._proc.stdout.read(READ_BYTES)
            if not chunk:
                if 0 < len(self._buffer) < _HEADER.size:
                    await self._abort(f"stream cut inside a header ({len(self._buffer)} bytes)")
                await self._proc.wait()
                return None
            self._buffer = self._buffer + chunk if self._buffer else chunk

    def _frames(self) -> list[Sample | dict]:
        """The whole frames at the start of the buffer, taken out of it; stops at a corrupt one."""
        buf, pos, frames = self._buffer, 0, []
        end, size = len(buf), _HEADER.size
        while end - pos >= size and not self._corrupt:
            kind, flags, track, pts, length = _HEADER.unpack_from(buf, pos)
            start = pos + size
            if length > MAX_FRAME_BYTES or kind not in (_SAMPLE, _EVENT):
                self._corrupt = f"bad frame header type={kind} length={length}"
            elif start + length <= end:
                pos = start + length
                if kind == _SAMPLE:
                    frames.append(Sample(track, pts, bool(flags & _KEYFRAME), bool(flags & _LOSS), buf[start:pos]))
                    continue
                try:
                    frames.append(json.loads(buf[start:pos]))
                except ValueError:
                    self._corrupt = "an event that is not JSON"
            else:
                break
        self._buffer = buf[pos:] if pos else buf
        return frames

    async def _abort(self, why: str) -> None:
        try:
            self._proc.kill()
        except ProcessLookupError:  # it has exited already
            pass
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
