"""What receiving a room costs before any recording work: the livekit SDK's share of an egress.

Not a benchmark on its own; ``composite.py`` and ``outputs.py`` call
:func:`measure_floor` next to each egress they measure. A subprocess joins the
room as a hidden participant through pyegress's own
:class:`~pyegress.media.source.room.RoomSource` (the very code an egress reads the
room with), subscribes to the same tracks, and receives every frame into Python
(video as I420, audio as 48 kHz stereo int16 in the frames the pipeline would
ask for) with callbacks that do nothing. Its CPU time per second is what the
livekit SDK costs: RTP, SRTP, jitter buffers, VP8 and Opus decoding, the native
→ Python crossing of every frame. The egress's cost minus this floor is
pyegress's own work (compositing, mixing, encoding, muxing).

Usage (child, started by :func:`measure_floor`)::

    python bench/receive_floor.py --url URL --token JWT --kinds audio,video --audio-frame-ms 20 --tracks N [--sids S,...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass

import psutil
from livekit import api, rtc

from pyegress.media.source.room import RoomSource


@dataclass
class Floor:
    """``cpu_s`` CPU-s of a receive-only subscriber over ``wall_s`` s; :attr:`cores` is their ratio."""

    cpu_s: float
    wall_s: float

    @property
    def cores(self) -> float:
        return self.cpu_s / self.wall_s


def floor_token(api_key: str, api_secret: str, room: str) -> str:
    """A hidden subscriber's token for ``room`` (hidden like an egress recorder, so publishers do not see it)."""
    grants = api.VideoGrants(room_join=True, room=room, hidden=True, can_publish=False, can_subscribe=True)
    return api.AccessToken(api_key, api_secret).with_identity(f"floor-{time.monotonic_ns()}") \
        .with_grants(grants).to_jwt()


def measure_floor(url: str, api_key: str, api_secret: str, room: str, seconds: float, *, kinds: tuple[str, ...],
                  tracks: int, audio_frame_ms: int, sids: tuple[str, ...] = ()) -> Floor:
    """Receive ``tracks`` tracks of ``kinds`` (``"audio"``, ``"video"``) of ``room`` (only those with SIDs
    ``sids``, if given) for ``seconds`` s in a subprocess, and return its CPU time over that time
    (start-up and joining not counted).

    Raises:
        RuntimeError: the subprocess did not subscribe to ``tracks`` tracks within 30 s, or failed.
    """
    proc = subprocess.Popen(
        [sys.executable, __file__, "--url", url, "--token", floor_token(api_key, api_secret, room),
         "--kinds", ",".join(kinds), "--audio-frame-ms", str(audio_frame_ms), "--tracks", str(tracks),
         "--sids", ",".join(sids)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the receive-floor subscriber did not get its tracks")
        child = psutil.Process(proc.pid)
        time.sleep(2)  # jitter buffers and decoders settle, as they have by the time an egress is ACTIVE
        t0, c0 = time.monotonic(), child.cpu_times()
        time.sleep(seconds)
        t1, c1 = time.monotonic(), child.cpu_times()
        proc.stdin.close()
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return Floor((c1.user + c1.system) - (c0.user + c0.system), t1 - t0)


async def _child(args: argparse.Namespace) -> None:
    kinds = set(args.kinds.split(","))
    sids = set(filter(None, args.sids.split(",")))
    received: set[str] = set()
    source = RoomSource(args.url, args.token, want=lambda pub, participant: (
        ("video" if pub.kind == rtc.TrackKind.KIND_VIDEO else "audio") in kinds and (not sids or pub.sid in sids)),
        audio_frame_ms=args.audio_frame_ms,
        on_video=lambda ref, frame: received.add(ref.sid), on_audio=lambda ref, samples: received.add(ref.sid))
    await source.connect()
    deadline = time.monotonic() + 30
    while len(received) < args.tracks:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(received)} of {args.tracks} tracks delivered media")
        await asyncio.sleep(0.1)
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.read)  # until the parent closes stdin
    await source.close()
    sys.stdout.flush()
    os._exit(0)  # skip the SDK's atexit disposal, which can abort while the room is torn down


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--kinds", default="audio,video")
    p.add_argument("--audio-frame-ms", type=int, default=20)
    p.add_argument("--tracks", type=int, required=True, help="tracks that must deliver media before measuring")
    p.add_argument("--sids", default="", help="comma-separated track SIDs to receive (default: all of --kinds)")
    asyncio.run(_child(p.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
