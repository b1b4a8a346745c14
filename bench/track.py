"""Benchmark: track egress CPU per media-second, the packet receiver and the livekit SDK path in the same run.

Not a test. One livekit-server, one publisher process (640x360 30 fps VP8 + 48 kHz Opus,
:func:`harness.start_publishers`) and two ``pyegress serve`` instances, one after the other, with
``PYEGRESS_TRACK_RECEIVER=packets`` (the Go receiver writes the publisher's samples unchanged: no decode,
no encode) and ``=sdk`` (the livekit SDK decodes, pyegress encodes again). Each records a video track egress
and then an audio track egress of ``--seconds``, one at a time, and for each it measures

- CPU-s per media-s: user + system CPU of the egress worker's process tree (the handler and its children,
  the receiver among them; :class:`harness.WorkerMonitor`) from EGRESS_ACTIVE to EGRESS_COMPLETE, over the
  ffprobe duration of the file;
- the tree's peak RSS (sampled every 0.5 s), start latency (StartTrackEgress → EGRESS_ACTIVE), and the
  tree's CPU by process from EGRESS_ACTIVE to StopEgress (which shows the receiver's share);
- the CPU used meanwhile by processes outside the benchmark (:class:`harness.OtherLoad`).

Targets of the packets path: VP8 640x360 ≤ 0.02 core, Opus ≤ 0.01 core.

Usage::

    .venv/bin/python bench/track.py [--seconds 30] [--out bench/RESULTS.md] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import shutil
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from jwt.warnings import InsecureKeyLengthWarning
from livekit import api

from harness import (MIB, RSS_SAMPLE_S, OtherLoad, WorkerMonitor, code_version, command_line, create_room, machine,
                     start_publishers, stop_process, update_results, wait_for)
from pyegress.devtools.livekit_server import LIVEKIT_SERVER_VERSION, LiveKitServer
from pyegress.devtools.probe import ffprobe
from pyegress.devtools.pyegress_server import PyegressServer
from pyegress.media.source.packets.binary import source_hash
from start_latency import wait_pool_idle
from web import TreeSampler

PATHS = ("packets", "sdk")
"""The values of ``PYEGRESS_TRACK_RECEIVER`` measured, in this order."""
SCENARIOS = (("video", "video 640x360 VP8 → WebM", api.TrackType.VIDEO),
             ("audio", "audio Opus → OGG", api.TrackType.AUDIO))
"""(kind, name, track type) of each measured track egress, in this order."""
TARGETS = {"video": 0.02, "audio": 0.01}
"""The packets path's targets in CPU-s per media-s."""
EARLIER_SDK = {"video": 0.121, "audio": 0.051}
"""The sdk path as bench/outputs.py measured it before (its section of RESULTS.md)."""
POOL_SIZE = 3
"""pyegress's default ``handler_pool_size``: the pool is refilled and idle before each egress."""

SECTION_START = "<!-- bench/track.py: start -->"
SECTION_END = "<!-- bench/track.py: end -->"


@dataclass
class TrackResult:
    """One track egress (``kind`` ``video``/``audio``) through receive path ``path``: ``cpu_s`` CPU-s of the worker
    tree over ``media_s`` s of file (ffprobe); ``by_process``: CPU-s by process name over ``sampled_s`` s
    (EGRESS_ACTIVE to StopEgress); memory in bytes, latency in s."""

    kind: str
    name: str
    path: str
    media_s: float
    cpu_s: float
    peak_tree_rss: int
    start_latency_s: float
    summary: str
    file_bytes: int
    other_cpus: float
    sampled_s: float
    samples: int
    by_process: dict[str, float] = field(default_factory=dict)

    @property
    def cores(self) -> float:
        """CPU-seconds per media-second."""
        return self.cpu_s / self.media_s

    @property
    def sample_rate(self) -> float:
        """Samples (video frames, Opus packets) in the file per media-second."""
        return self.samples / self.media_s

    def shares(self) -> str:
        """CPU-s per s of each process of the tree, and per sample of the file in µs."""
        return ", ".join(f"{name} {cpu / self.sampled_s:.4f} ({cpu / self.sampled_s / self.sample_rate * 1e6:.0f} "
                         "µs/sample)" for name, cpu in sorted(self.by_process.items(), key=lambda x: -x[1]))


def count_packets(path: str | Path) -> int:
    """Packets of the file's first stream (ffprobe ``-count_packets``)."""
    out = subprocess.run(["ffprobe", "-v", "error", "-count_packets", "-select_streams", "0",
                          "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", str(path)],
                         check=True, capture_output=True, text=True).stdout
    return int(out.split()[0])


async def record_track(lk: LiveKitServer, egress: PyegressServer, room: str, sid: str, seconds: float,
                       monitor: WorkerMonitor) -> tuple[api.EgressInfo, float, float, OtherLoad, TreeSampler]:
    """Record ``seconds`` of track ``sid`` to a file: ``(info at COMPLETE, start latency s, tree CPU-s from ACTIVE to
    COMPLETE, the other load meanwhile, the tree's samples at ACTIVE and at StopEgress)``.

    Raises:
        RuntimeError: the egress failed or timed out.
    """
    async with api.LiveKitAPI(egress.url, lk.api_key, lk.api_secret) as eg:
        t0 = time.monotonic()
        info = await eg.egress.start_track_egress(api.TrackEgressRequest(
            room_name=room, track_id=sid, file=api.DirectFileOutput()))
        await wait_for(eg, info.egress_id, api.EgressStatus.EGRESS_ACTIVE, 60)
        start_latency = time.monotonic() - t0
        monitor.mark_active()
        tree = TreeSampler(monitor.worker)
        await asyncio.to_thread(tree.sample)
        other = OtherLoad()
        other.start()
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            monitor.sample_rss()
            await asyncio.sleep(min(RSS_SAMPLE_S, left))
        await asyncio.to_thread(tree.sample)
        await eg.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
        info = await wait_for(eg, info.egress_id, api.EgressStatus.EGRESS_COMPLETE, 120)
        cpu_s = await asyncio.to_thread(monitor.cpu_since_active)
        other.stop()
    return info, start_latency, cpu_s, other, tree


def measure_path(workdir: Path, lk: LiveKitServer, room: str, sids: dict[int, str], path: str,
                 seconds: float) -> list[TrackResult]:
    """Each of :data:`SCENARIOS` through a ``pyegress serve`` with ``PYEGRESS_TRACK_RECEIVER=path``."""
    results = []
    with PyegressServer(workdir / f"pyegress-{path}", lk.url, lk.api_key, lk.api_secret,
                        extra_env={"PYEGRESS_TRACK_RECEIVER": path}) as egress:
        seen: set[int] = set()
        for kind, name, track_type in SCENARIOS:
            asyncio.run(wait_pool_idle(egress, POOL_SIZE))
            print(f"{path}: {name}: recording {seconds:g} s ...", flush=True)
            monitor = WorkerMonitor(egress.pid, seen)
            info, start_latency, cpu_s, other, tree = asyncio.run(
                record_track(lk, egress, room, sids[track_type], seconds, monitor))
            seen.add(monitor.worker.pid)
            location = info.file_results[0].location if info.file_results else info.file.location
            probe = ffprobe(location)
            result = TrackResult(kind, name, path, probe.duration, cpu_s, monitor.peak_tree_rss, start_latency,
                                 probe.summary(), Path(location).stat().st_size, other.cpus,
                                 tree.t_last - tree.t_first, count_packets(location), tree.cpu_by_name())
            print(f"  {result.cores:.4f} CPU-s/media-s over {result.media_s:.2f} s; by process (CPU-s/s): "
                  f"{result.shares()}; {result.sample_rate:.1f} samples/s; "
                  f"{result.summary}; other CPUs {result.other_cpus:.2f}", flush=True)
            results.append(result)
            monitor.wait_gone()
    return results


def run(workdir: Path, seconds: float) -> list[TrackResult]:
    results: list[TrackResult] = []
    with LiveKitServer(log_path=workdir / "livekit-server.log") as lk:
        room = f"bench-track-{int(time.time())}"
        asyncio.run(create_room(lk, room))
        pubs = start_publishers(lk, room, 1, workdir / "publishers.log")
        try:
            async def tracks() -> dict[int, str]:
                async with api.LiveKitAPI(lk.http_url, lk.api_key, lk.api_secret) as lkapi:
                    ps = (await lkapi.room.list_participants(api.ListParticipantsRequest(room=room))).participants
                return {t.type: t.sid for p in ps for t in p.tracks}

            sids = asyncio.run(tracks())
            for path in PATHS:
                results += measure_path(workdir, lk, room, sids, path, seconds)
        finally:
            stop_process(pubs)
    return results


# ---------------------------------------------------------------------------- report


def section(command: str, results: list[TrackResult], load: tuple[float, float]) -> str:
    by = {(r.kind, r.path): r for r in results}
    rows = []
    for r in results:
        ratio = f"{r.cores / by[(r.kind, 'sdk')].cores:.3f}" if r.path == "packets" else ""
        rows.append(f"| {r.name} | {r.path} | {r.media_s:.2f} | {r.cores:.4f} | {ratio} | {r.peak_tree_rss / MIB:.0f} "
                    f"| {r.start_latency_s * 1000:.0f} | {r.summary.split(', ', 1)[1]}, {r.file_bytes / 1024:.0f} KiB, "
                    f"{r.sample_rate:.1f} samples/s "
                    f"| {r.other_cpus:.2f} |")
    shares = "\n".join(f"  - {r.name}, {r.path}: {r.shares()}" for r in results)
    mark = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    targets = "; ".join(
        f"{name.split(' →')[0]} <= {TARGETS[kind]} core: {by[(kind, 'packets')].cores:.4f}, "
        f"{mark(by[(kind, 'packets')].cores <= TARGETS[kind])}" for kind, name, _ in SCENARIOS)
    earlier = ", ".join(f"{kind} {by[(kind, 'sdk')].cores:.3f} (then {EARLIER_SDK[kind]})" for kind, _, _ in SCENARIOS)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""{SECTION_START}
## Track egress: packet receiver vs livekit SDK, same run

Command: `{command}`

Date: {now}. Code: {code_version()} (receiver sources {source_hash()}). Machine: {machine()}; Python
{platform.python_version()}, livekit-server {LIVEKIT_SERVER_VERSION}. 1-min load average {load[0]:.2f} before the run,
{load[1]:.2f} after. One livekit-server, one publisher process (640x360 30 fps VP8, 48 kHz Opus, no simulcast) and
one `pyegress serve` per path, started one after the other (`PYEGRESS_TRACK_RECEIVER=packets`, then `=sdk`),
all on this machine; each egress measured alone, the handler pool refilled and idle before it.

| scenario | path | media s | CPU-s/media-s | packets/sdk | tree peak RSS MiB | start ms | file (ffprobe) | other CPUs |
|---|---|---:|---:|---:|---:|---:|---|---:|
{chr(10).join(rows)}

Targets of the packets path: {targets}.
The sdk path now: {earlier} CPU-s/media-s as bench/outputs.py measured it earlier.

- CPU-s/media-s: user + system CPU of the egress worker's process tree (the `pyegress.handler` process and
  its children; on the packets path the Go `receiver` is one, counted live and, once the handler has reaped it,
  through the handler's children times) from EGRESS_ACTIVE to EGRESS_COMPLETE, over the ffprobe duration of
  the file (= cores used on average).
- by process, CPU-s per s from EGRESS_ACTIVE to StopEgress (the processes alive at both ends; `python` is the
  handler), and that per sample in the file (VP8 frames, Opus packets: ffprobe's packet count):
{shares}
- tree peak RSS: the sum of the tree's RSS, sampled every 0.5 s. Start: StartTrackEgress → EGRESS_ACTIVE,
  ListEgress polled every 20 ms.
- other CPUs: used on average by processes outside the benchmark meanwhile (0 on a quiet machine).
{SECTION_END}
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=30.0, help="media seconds per egress (default 30)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "RESULTS.md")
    p.add_argument("--workdir", type=Path, default=None,
                   help="keep servers' state and logs here (default: a temporary directory, removed after a success)")
    args = p.parse_args()
    warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)  # the dev key pair's 6-byte secret
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="pyegress-bench-track-"))
    workdir.mkdir(parents=True, exist_ok=True)
    load0 = os.getloadavg()[0]
    try:
        results = run(workdir, args.seconds)
    except BaseException:
        print(f"logs kept in {workdir}", flush=True)
        raise
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    text = section(command_line(), results, (load0, os.getloadavg()[0]))
    print(text)
    update_results(args.out, text, SECTION_START, SECTION_END)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
