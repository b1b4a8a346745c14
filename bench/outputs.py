"""Benchmark: track egress, audio-only composite, and one encode fanned out to three outputs.

Not a test. Against a real livekit-server with generated publishers (in their
own process), it records each scenario for ``--seconds`` through pyegress's
Egress API and measures the egress worker's CPU time per second of media
(user + system of the worker tree from EGRESS_ACTIVE to EGRESS_COMPLETE, the
same measurement as ``bench/composite.py``), with the issue's targets:

- track egress (audio track → OGG/Opus, video track 640x360 VP8 → WebM/VP8): ≤ 0.15 core;
- audio-only room composite of 4 publishers: ≤ 0.05 core;
- 4-publisher composite to file + HLS segments + RTMP (nginx-rtmp on loopback) vs file
  alone: ≤ 1.15x.

Usage::

    .venv/bin/python bench/outputs.py [--seconds 30] [--out bench/RESULTS.md]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from jwt.warnings import InsecureKeyLengthWarning
from livekit import api

from harness import (OtherLoad, WorkerMonitor, command_line, create_room, machine, start_publishers, stop_process,
                     update_results, wait_for)
from pyegress.devtools.livekit_server import LiveKitServer
from pyegress.devtools.pyegress_server import PyegressServer
from support.rtmp_server import RtmpServer
from pyegress.media.pipeline import BULK_AUDIO_FRAME_MS, LIVE_AUDIO_FRAME_MS
from receive_floor import measure_floor

SECTION_START = "<!-- bench/outputs.py: start -->"
SECTION_END = "<!-- bench/outputs.py: end -->"


@dataclass
class Scenario:
    """One measured egress: CPU-s of the worker tree over ``media_s`` s of media."""

    name: str
    cpu_s: float
    media_s: float
    other_cpus: float
    floor_cores: float = 0.0  # the receive floor of the same tracks (see receive_floor.py)

    @property
    def cores(self) -> float:
        return self.cpu_s / self.media_s


async def measure(egress: PyegressServer, lk: LiveKitServer, name: str, start, seconds: float,
                  seen: set[int]) -> Scenario:
    """Start with ``start(egress_api)``, record ``seconds``, stop, and measure the worker.

    Raises:
        RuntimeError: the egress failed or timed out.
    """
    monitor = WorkerMonitor(egress.pid, seen)
    async with api.LiveKitAPI(egress.url, lk.api_key, lk.api_secret) as eg:
        info = await start(eg)
        await wait_for(eg, info.egress_id, api.EgressStatus.EGRESS_ACTIVE, 60)
        monitor.mark_active()
        other = OtherLoad()
        other.start()
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        await eg.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
        await wait_for(eg, info.egress_id, api.EgressStatus.EGRESS_COMPLETE, 120)
        media_s = time.monotonic() - t0
        cpu_s = await asyncio.to_thread(monitor.cpu_since_active)
        other.stop()
    seen.add(monitor.worker.pid)
    print(f"{name}: {cpu_s / media_s:.3f} CPU-s/media-s", flush=True)
    return Scenario(name, cpu_s, media_s, other.cpus)


def run(workdir: Path, seconds: float) -> list[Scenario]:
    results: list[Scenario] = []
    seen: set[int] = set()
    with LiveKitServer(log_path=workdir / "livekit-server.log") as lk, \
            PyegressServer(workdir / "pyegress", lk.url, lk.api_key, lk.api_secret) as egress, \
            RtmpServer(workdir / "rtmp") as rtmp:
        room = f"bench-outputs-{int(time.time())}"
        asyncio.run(create_room(lk, room))
        pubs = start_publishers(lk, room, 4, workdir / "publishers.log")
        try:
            async def tracks() -> dict[tuple[str, int], str]:
                async with api.LiveKitAPI(lk.http_url, lk.api_key, lk.api_secret) as lkapi:
                    ps = (await lkapi.room.list_participants(api.ListParticipantsRequest(room=room))).participants
                return {(p.identity, t.type): t.sid for p in ps for t in p.tracks}

            sids = asyncio.run(tracks())
            audio0, video0 = sids[("pub-0", api.TrackType.AUDIO)], sids[("pub-0", api.TrackType.VIDEO)]
            composite = dict(room_name=room)
            # each scenario: its name, how it starts, and the tracks its egress receives (kinds, count,
            # audio frame size, SIDs) for the receive floor
            av4 = (("audio", "video"), 8, LIVE_AUDIO_FRAME_MS, ())
            scenarios = [
                ("track egress, audio → OGG", lambda eg: eg.egress.start_track_egress(api.TrackEgressRequest(
                    room_name=room, track_id=audio0, file=api.DirectFileOutput())),
                 (("audio",), 1, BULK_AUDIO_FRAME_MS, (audio0,))),
                ("track egress, video 640x360 → WebM", lambda eg: eg.egress.start_track_egress(api.TrackEgressRequest(
                    room_name=room, track_id=video0, file=api.DirectFileOutput())),
                 (("video",), 1, LIVE_AUDIO_FRAME_MS, (video0,))),
                ("audio-only composite, 4 publishers", lambda eg: eg.egress.start_room_composite_egress(
                    api.RoomCompositeEgressRequest(**composite, audio_only=True,
                                                   file_outputs=[api.EncodedFileOutput(filepath="a.ogg")])),
                 (("audio",), 4, BULK_AUDIO_FRAME_MS, ())),
                ("composite, 4 publishers, file", lambda eg: eg.egress.start_room_composite_egress(
                    api.RoomCompositeEgressRequest(**composite, file_outputs=[api.EncodedFileOutput(filepath="f.mp4")])),
                 av4),
                ("composite, 4 publishers, file + HLS + RTMP", lambda eg: eg.egress.start_room_composite_egress(
                    api.RoomCompositeEgressRequest(
                        **composite, file_outputs=[api.EncodedFileOutput(filepath="f3.mp4")],
                        segment_outputs=[api.SegmentedFileOutput(filename_prefix="hls/bench")],
                        stream_outputs=[api.StreamOutput(urls=[rtmp.url("bench")])])),
                 av4),
            ]
            for name, start, (kinds, count, frame_ms, only) in scenarios:
                result = asyncio.run(measure(egress, lk, name, start, seconds, seen))
                result.floor_cores = measure_floor(lk.url, lk.api_key, lk.api_secret, room, seconds, kinds=kinds,
                                                   tracks=count, audio_frame_ms=frame_ms, sids=only).cores
                print(f"  receive floor {result.floor_cores:.3f}", flush=True)
                results.append(result)
        finally:
            stop_process(pubs)
    return results


def section(command: str, results: list[Scenario]) -> str:
    by = {r.name: r for r in results}
    one, three = by["composite, 4 publishers, file"], by["composite, 4 publishers, file + HLS + RTMP"]
    rows = "\n".join(f"| {r.name} | {r.media_s:.1f} | {r.cores:.3f} | {r.floor_cores:.3f} "
                     f"| {r.cores - r.floor_cores:.3f} | {r.other_cpus:.2f} |" for r in results)
    track = max(by["track egress, audio → OGG"].cores, by["track egress, video 640x360 → WebM"].cores)
    audio = by["audio-only composite, 4 publishers"].cores
    fan = three.cores / one.cores
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    mark = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    return f"""{SECTION_START}
## Track egress, audio-only composite, fan-out to three outputs

Command: `{command}`

Date: {now}. Machine: {machine()}. Publishers: 4 generated (640x360 30 fps VP8, 48 kHz Opus), in their own
process; RTMP into nginx-rtmp on loopback. CPU: user + system of the egress worker tree from
EGRESS_ACTIVE to EGRESS_COMPLETE per second of recording (= cores used on average).

| scenario | media s | CPU-s/media-s | receive floor | above floor | other CPUs |
|---|---:|---:|---:|---:|---:|
{rows}

Targets: track egress <= 0.15 core: {track:.3f}, {mark(track <= 0.15)}; audio-only composite <= 0.05 core:
{audio:.3f}, {mark(audio <= 0.05)}; three outputs <= 1.15x one output: {fan:.2f}x, {mark(fan <= 1.15)}.
"Receive floor": CPU-s per s of a hidden subscriber receiving the same tracks through pyegress's `RoomSource`
(audio in the frames the egress asks for: {BULK_AUDIO_FRAME_MS} ms without video, {LIVE_AUDIO_FRAME_MS} ms with it) and
doing nothing with them, measured right after each egress: what the livekit SDK costs. "Above floor" is the
egress minus that: pyegress's own work (compose, mix, encode, mux, outputs).
"Other CPUs" is what processes outside the benchmark used meanwhile (0 on a quiet machine).
{SECTION_END}
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=30.0, help="media seconds per scenario (default 30)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "RESULTS.md")
    args = p.parse_args()
    warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)  # the dev key pair's 6-byte secret
    with tempfile.TemporaryDirectory(prefix="pyegress-bench-") as tmp:
        results = run(Path(tmp), args.seconds)
    text = section(command_line(), results)
    print(text)
    update_results(args.out, text, SECTION_START, SECTION_END)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
