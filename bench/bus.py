"""Benchmark: pyegress as an egress worker of livekit-server (psrpc over Redis).

Not a test. Starts Debian redis-server, livekit-server with ``--redis-host``,
one ``pyegress worker`` with its default config (cpu_cost defaults, 0.8 max
utilization), and generated publishers (2 x 640x360 30 fps, one process), all
on this machine. Then:

1. **Claim latency**: ``--starts`` room composites are started one after another
   through livekit-server's own Egress API (each stopped once ACTIVE). A passive
   Redis subscriber sees livekit-server's StartEgress Request and the worker's
   ClaimRequest; the claim latency is the time between the two (both seen by
   the same subscriber, so Redis delivery cancels out), in ms. Also reported:
   the StartRoomCompositeEgress call's own duration through livekit-server.
2. **Jobs at saturation**: composites of the same room are started until the
   worker stops claiming (livekit-server then answers ``unavailable``, after its
   own retries), all record ``--seconds`` together, and each file is ffprobed:
   did every accepted composite keep real time (duration and frame count)?
   The worker tree's CPU (cores) while all run is reported.

Usage::

    .venv/bin/python bench/bus.py [--starts 10] [--seconds 30] [--out bench/RESULTS.md] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import redis.asyncio as aioredis
from jwt.warnings import InsecureKeyLengthWarning
from livekit import api

from harness import OtherLoad, code_version, command_line, machine, start_publishers, stop_process, update_results
from pyegress.devtools.livekit_server import LIVEKIT_SERVER_VERSION, LiveKitServer
from pyegress.devtools.probe import ffprobe
from pyegress.devtools.pyegress_server import PyegressWorker
from pyegress.psrpc.pb import psrpc_internal_pb2 as pb
from pyegress.psrpc.rpc import unwrap
from support.redis_server import RedisServer

S = api.EgressStatus
SECTION_START, SECTION_END = "<!-- bench/bus.py: start -->", "<!-- bench/bus.py: end -->"


class ClaimWatcher:
    """A passive Redis subscriber timing StartEgress Request → the worker's ClaimRequest (monotonic s)."""

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self.redis = aioredis.Redis(host=host, port=int(port))
        self.requests: dict[str, float] = {}
        self.claims: dict[str, float] = {}
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self.pubsub = self.redis.pubsub()
        await self.pubsub.subscribe("EgressInternal|StartEgress|REQ")
        await self.pubsub.psubscribe("EgressInternal|*|CLAIM")
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            msg = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if msg is None:
                continue
            now = time.monotonic()
            if (req := unwrap(msg["data"], pb.Request)) is not None:
                self.requests.setdefault(req.request_id, now)
            elif (claim := unwrap(msg["data"], pb.ClaimRequest)) is not None:
                self.claims.setdefault(claim.request_id, now)

    def latencies_ms(self) -> list[float]:
        return [(self.claims[r] - t) * 1000 for r, t in self.requests.items() if r in self.claims]

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
        await self.pubsub.aclose()
        await self.redis.aclose()


async def wait_status(lk: api.LiveKitAPI, egress_id: str, wanted, timeout_s: float = 60) -> api.EgressInfo:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        items = (await lk.egress.list_egress(api.ListEgressRequest(egress_id=egress_id))).items
        if items and items[0].status in wanted:
            return items[0]
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{egress_id} did not reach {wanted}")


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and its children."""
    total = 0.0
    try:
        root = psutil.Process(pid)
        for p in [root, *root.children(recursive=True)]:
            try:
                t = p.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return total


def video_packets(path: Path) -> int:
    """Video packets (frames) in ``path``, counted by ffprobe (fragmented MP4 has no frame count)."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries",
                          "stream=nb_read_packets", "-of", "csv=p=0", str(path)], check=True, capture_output=True,
                         text=True).stdout
    return int(out.strip() or 0)


@dataclass
class Result:
    claim_ms: list[float] = field(default_factory=list)
    start_call_ms: list[float] = field(default_factory=list)
    accepted: int = 0
    refusal: str = ""
    refusal_s: float = 0.0
    cores: float = 0.0
    files: list[tuple[float, float, int]] = field(default_factory=list)  # (duration s, avg fps, frames)
    seconds: float = 0.0
    load: float = 0.0


async def run(workdir: Path, starts: int, seconds: float) -> Result:
    result = Result(seconds=seconds)
    room = "bench-bus"
    with RedisServer() as redis_server, \
            LiveKitServer(log_path=workdir / "livekit-server.log", redis_host=redis_server.address) as lk, \
            PyegressWorker(workdir / "worker", lk.url, lk.api_key, lk.api_secret, redis_server.address) as worker:
        watcher = ClaimWatcher(redis_server.address)
        await watcher.start()
        async with api.LiveKitAPI(lk.http_url, lk.api_key, lk.api_secret) as client:
            await client.room.create_room(api.CreateRoomRequest(name=room))
            pubs = start_publishers(lk, room, 2, workdir / "publishers.log")
            try:
                for i in range(starts):
                    t0 = time.monotonic()
                    info = await client.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
                        room_name=room, file_outputs=[api.EncodedFileOutput(filepath=f"claim/{i}.mp4")]))
                    result.start_call_ms.append((time.monotonic() - t0) * 1000)
                    await wait_status(client, info.egress_id, (S.EGRESS_ACTIVE,))
                    await client.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
                    await wait_status(client, info.egress_id, (S.EGRESS_COMPLETE,))
                result.claim_ms = watcher.latencies_ms()

                other = OtherLoad()
                other.start()
                running: list[api.EgressInfo] = []
                while True:
                    t0 = time.monotonic()
                    try:
                        info = await client.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
                            room_name=room, file_outputs=[api.EncodedFileOutput(filepath=f"sat/{len(running)}.mp4")]))
                    except api.TwirpError as e:
                        result.refusal, result.refusal_s = f"{e.code}: {e.message}", time.monotonic() - t0
                        break
                    running.append(await wait_status(client, info.egress_id, (S.EGRESS_ACTIVE,)))
                    await asyncio.sleep(3)  # let its measured CPU count before the next bid
                result.accepted = len(running)
                cpu0, t0 = tree_cpu_s(worker.pid), time.monotonic()
                await asyncio.sleep(seconds)
                result.cores = (tree_cpu_s(worker.pid) - cpu0) / (time.monotonic() - t0)
                other.stop()
                result.load = other.cpus
                for info in running:
                    await client.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
                for info in running:
                    done = await wait_status(client, info.egress_id, (S.EGRESS_COMPLETE, S.EGRESS_FAILED))
                    path = worker.recordings_dir / done.file_results[0].filename
                    probe = ffprobe(path)
                    result.files.append((probe.duration, probe.video_fps, video_packets(path)))
            finally:
                stop_process(pubs)
                await watcher.close()
    return result


def section(command: str, r: Result) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    claim = sorted(r.claim_ms)
    lines = [SECTION_START, "## Egress worker over psrpc: claim latency and jobs at saturation", "",
             f"Command: `{command}`", "",
             f"Date: {now}. Code: {code_version()}. Machine: {machine()}; livekit-server {LIVEKIT_SERVER_VERSION}, "
             "redis-server, one `pyegress worker` with default cpu_cost (room composite 0.5 core, max utilization "
             "0.8), 2 publishers at 640x360 30 fps; all on this machine.", "",
             "| measure | value |", "|---|---:|",
             f"| claim latency, StartEgress Request → worker's ClaimRequest (median of {len(claim)}) | "
             f"{statistics.median(claim):.1f} ms |" if claim else "| claim latency | not seen |",
             f"| claim latency max | {max(claim):.1f} ms |" if claim else "",
             f"| StartRoomCompositeEgress through livekit-server (median) | "
             f"{statistics.median(r.start_call_ms):.0f} ms |",
             f"| concurrent 720p30 composites the worker accepted | {r.accepted} |",
             f"| next StartEgress | `{r.refusal}` after {r.refusal_s:.1f} s (livekit-server's retries) |",
             f"| worker tree CPU with all running | {r.cores:.2f} cores |",
             f"| other processes' CPU meanwhile | {r.load:.2f} cores |", ""]
    lines += ["Files of the concurrent composites (ffprobe; started one after another, all running together "
              f"for {r.seconds:.0f} s; frames = video packets, 30 per second when real time was kept):", "",
              "| # | duration s | frames | frames / (duration x 30) |", "|---:|---:|---:|---:|"]
    lines += [f"| {i} | {d:.2f} | {n} | {n / (d * 30):.3f} |" for i, (d, fps, n) in enumerate(r.files)]
    lines += ["", "Goal: at least 3 concurrent 720p composites per 2 cores: "
              f"{'met' if r.accepted >= 3 else 'NOT met'} ({r.accepted}).", SECTION_END]
    return "\n".join(line for line in lines if line is not None)


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "RESULTS.md")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="pyegress-bench-bus-"))
    result = asyncio.run(run(workdir, args.starts, args.seconds))
    text = section(command_line(), result)
    print(text)
    update_results(args.out, text, SECTION_START, SECTION_END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
