"""Benchmark: what a room composite costs compared with encoding the same stream alone.

Not a test. For 1, 2 and 4 generated publishers it records a room composite
through pyegress's Egress API against a real livekit-server, and measures

- the CPU time (user + system, s) of the egress worker process tree
  (``python -m pyegress.handler``, a child of ``pyegress serve``) between
  EGRESS_ACTIVE and EGRESS_COMPLETE, per second of recorded media;
- the worker's peak RSS (MiB), sampled every 0.5 s;
- start latency (ms): StartRoomCompositeEgress call until ListEgress shows EGRESS_ACTIVE;
- stop latency (ms): StopEgress call until ListEgress shows EGRESS_COMPLETE
  (ListEgress is polled every 20 ms).

Right before each composite it measures the baseline: a bare PyAV encode of an
equivalent stream in a subprocess, as fast as it can go (not paced), and reports
its CPU time per second of media. The stream is 1280x720 yuv420p 30 fps H.264 (the
pictures a 4-publisher grid composite shows, drawn with numpy slice copies;
the x264 options and thread count pyegress's encoder uses for the default
H264_720P_30 preset) and a 48 kHz stereo AAC sine, into an MP4. The ratio
composite/baseline is pyegress's cost on top of the encode it cannot avoid; the
issue's target is at most 1.3x with 4 publishers.

Publishers run in their own process, so their CPU is not counted. The machine
is shared, so every measurement also reports how much CPU processes outside the
benchmark used meanwhile (:class:`OtherLoad`); run it on a quiet machine.

Usage::

    .venv/bin/python bench/composite.py [--seconds 60] [--publishers 1,2,4] [--out bench/RESULTS.md]
                                        [--workdir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import signal
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import av
from jwt.warnings import InsecureKeyLengthWarning
from livekit import api

from harness import (AUDIO_KBPS, AUDIO_RATE, FPS, MIB, POLL_S, RSS_SAMPLE_S, VIDEO_KBPS, X264_OPTIONS,
                     BaselineResult, OtherLoad, WorkerMonitor, code_version, command_line, create_room, machine,
                     run_baseline, start_publishers, stop_process, update_results, wait_for)
from pyegress.devtools.livekit_server import LIVEKIT_SERVER_VERSION, LiveKitServer
from pyegress.devtools.probe import ffprobe
from pyegress.devtools.pyegress_server import PyegressServer
from pyegress.media.pipeline import LIVE_AUDIO_FRAME_MS
from receive_floor import Floor, measure_floor

TARGET_RATIO = 1.3
"""The issue's target: a 4-publisher composite costs at most this many times the baseline CPU."""
TARGET_PUBLISHERS = 4
MIN_FPS = FPS - 0.5
"""A composite recorded at fewer frames per second than this dropped frames: its CPU is not comparable."""

SECTION_START = "<!-- bench/composite.py: start -->"
SECTION_END = "<!-- bench/composite.py: end -->"


# ---------------------------------------------------------------------------- composite


@dataclass
class CompositeResult:
    """One recorded composite. Times in s, memory in bytes; ``media_s`` and ``fps`` (frames per
    second) are the file's, from ffprobe: fewer than 30 fps means the worker did not keep up
    and dropped frames, so it did less work than the baseline.

    ``other_cpus``: CPUs used on average by processes outside the benchmark from ACTIVE to
    COMPLETE (see :class:`OtherLoad`).
    """

    publishers: int
    media_s: float
    cpu_s: float
    peak_rss: int
    start_latency_s: float
    stop_latency_s: float
    summary: str
    other_cpus: float
    fps: float

    @property
    def cpu_per_media_s(self) -> float:
        """CPU-seconds per media-second."""
        return self.cpu_s / self.media_s


async def _sample_rss(monitor: WorkerMonitor) -> None:
    while True:
        monitor.sample_rss()
        await asyncio.sleep(RSS_SAMPLE_S)


async def record_composite(lk: LiveKitServer, egress: PyegressServer, room: str, publishers: int,
                           seconds: float, monitor: WorkerMonitor) -> CompositeResult:
    """Record ``seconds`` of a room composite of ``room`` (publishers already in it) and measure it.

    Raises:
        RuntimeError: the egress failed or timed out.
    """
    async with api.LiveKitAPI(egress.url, lk.api_key, lk.api_secret) as eg:
        t0 = time.monotonic()
        info = await eg.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
            room_name=room, file_outputs=[api.EncodedFileOutput(filepath="bench-{room_name}.mp4")]))
        await wait_for(eg, info.egress_id, api.EgressStatus.EGRESS_ACTIVE, 60)
        start_latency = time.monotonic() - t0
        monitor.mark_active()
        other = OtherLoad()
        other.start()
        sampler = asyncio.create_task(_sample_rss(monitor))
        try:
            await asyncio.sleep(seconds)
            t1 = time.monotonic()
            await eg.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
            info = await wait_for(eg, info.egress_id, api.EgressStatus.EGRESS_COMPLETE, 120)
            stop_latency = time.monotonic() - t1
            cpu_s = await asyncio.to_thread(monitor.cpu_since_active)
            other.stop()
        finally:
            sampler.cancel()
    probe = ffprobe(info.file_results[0].location)
    return CompositeResult(publishers, probe.duration, cpu_s, monitor.peak_rss, start_latency, stop_latency,
                           probe.summary(), other.cpus, probe.video_fps)


@dataclass
class Row:
    """One publisher count: its composite, the baseline encode run right before it, and the receive
    floor (:mod:`receive_floor`) measured right after it on the same tracks."""

    composite: CompositeResult
    baseline: BaselineResult
    floor: Floor

    @property
    def ratio(self) -> float:
        """Composite CPU-s per media-s over the baseline's."""
        return self.composite.cpu_per_media_s / self.baseline.cpu_per_media_s

    @property
    def own_ratio(self) -> float:
        """What the composite costs on top of receiving the room, over the baseline: pyegress's own work
        (compose, mix, encode, mux) compared with the bare encode."""
        return (self.composite.cpu_per_media_s - self.floor.cores) / self.baseline.cpu_per_media_s


def run_all(workdir: Path, counts: list[int], seconds: float) -> list[Row]:
    """For each publisher count, the baseline encode and then the composite, each ``seconds`` of media.

    The baseline is run again next to each composite because this machine's speed
    drifts between minutes (the same encode has taken 0.34 and 0.53 CPU-s/media-s
    on a quiet machine); every ratio compares measurements taken a minute apart.
    One livekit-server and one ``pyegress serve`` serve every composite.
    """
    rows = []
    with LiveKitServer(log_path=workdir / "livekit-server.log") as lk, \
            PyegressServer(workdir / "pyegress", lk.url, lk.api_key, lk.api_secret) as egress:
        seen_workers: set[int] = set()
        for count in counts:
            print(f"{count} publisher(s): baseline encode of {seconds:g} s ...", flush=True)
            baseline = run_baseline(workdir / f"baseline-{count}.mp4", seconds)
            room = f"bench-{count}p-{int(time.time())}"
            asyncio.run(create_room(lk, room))
            pubs = start_publishers(lk, room, count, workdir / f"publishers-{count}.log")
            try:
                monitor = WorkerMonitor(egress.pid, seen_workers)
                print(f"{count} publisher(s): recording {seconds:g} s ...", flush=True)
                composite = asyncio.run(record_composite(lk, egress, room, count, seconds, monitor))
                seen_workers.add(monitor.worker.pid)
                print(f"{count} publisher(s): receive floor for {seconds:g} s ...", flush=True)
                floor = measure_floor(lk.url, lk.api_key, lk.api_secret, room, seconds, kinds=("audio", "video"),
                                      tracks=2 * count, audio_frame_ms=LIVE_AUDIO_FRAME_MS)
            finally:
                stop_process(pubs)
            rows.append(Row(composite, baseline, floor))
    return rows


# ---------------------------------------------------------------------------- report


def table(rows: list[Row]) -> str:
    """The results as a Markdown table."""
    lines = ["| publishers | media s | CPU-s/media-s | baseline CPU-s/media-s | ratio | receive floor "
             "| ratio above floor | peak RSS MiB | start latency ms | stop latency ms |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        r = row.composite
        lines.append(f"| {r.publishers} | {r.media_s:.2f} | {r.cpu_per_media_s:.3f} "
                     f"| {row.baseline.cpu_per_media_s:.3f} | {row.ratio:.2f} | {row.floor.cores:.3f} "
                     f"| {row.own_ratio:.2f} | {r.peak_rss / MIB:.0f} "
                     f"| {r.start_latency_s * 1000:.0f} | {r.stop_latency_s * 1000:.0f} |")
    return "\n".join(lines)


def verdict(rows: list[Row]) -> str:
    """Whether the issue's target holds, in one sentence."""
    target = [row for row in rows if row.composite.publishers == TARGET_PUBLISHERS]
    if not target:
        return f"Target: {TARGET_PUBLISHERS}-publisher composite <= {TARGET_RATIO}x baseline (not measured in this run)."
    row = target[0]
    head = f"Target: {TARGET_PUBLISHERS}-publisher composite <= {TARGET_RATIO}x baseline: {row.ratio:.2f}x"
    if row.composite.fps < MIN_FPS:
        return (f"{head}, not comparable: the worker kept up with only {row.composite.fps:.2f} of {FPS} fps "
                "(it dropped frames, so it encoded less than the baseline).")
    floor = (f" Receiving the room alone (the livekit SDK) costs {row.floor.cores:.3f} CPU-s/media-s, "
             f"{row.floor.cores / row.baseline.cpu_per_media_s:.2f}x the baseline; above that floor the composite "
             f"costs {row.own_ratio:.2f}x the bare encode.")
    return f"{head}, {'met' if row.ratio <= TARGET_RATIO else 'NOT met'}.{floor}"


def busiest_other_load(rows: list[Row]) -> float:
    """The most CPUs that processes outside the benchmark used during any one measurement."""
    return max(x.other_cpus for row in rows for x in (row.composite, row.baseline))


def section(command: str, rows: list[Row], load: tuple[float, float]) -> str:
    """The RESULTS.md section of this run, between its markers; ``load`` is the 1-min load average before and after."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    details = "\n".join(
        f"- {row.composite.publishers} publisher(s): composite {row.composite.summary}; baseline "
        f"{row.baseline.cpu_s:.1f} CPU-s in {row.baseline.wall_s:.1f} s wall, {row.baseline.summary}; "
        f"other processes {row.composite.other_cpus:.2f} / {row.baseline.other_cpus:.2f} CPUs"
        for row in rows)
    return f"""{SECTION_START}
## Room composite vs bare x264 encode

Command: `{command}`

Date: {now}. Code: {code_version()}. Machine: {machine()}; Python {platform.python_version()},
PyAV {av.__version__}, livekit-server {LIVEKIT_SERVER_VERSION}. 1-min load average {load[0]:.2f} before
the run, {load[1]:.2f} after. livekit-server, `pyegress serve` and the publishers (one process,
640x360 30 fps each) run on the same machine as the worker.

{table(rows)}

{verdict(rows)}

- CPU-s/media-s: user + system CPU time of the egress worker process tree (`python -m
  pyegress.worker`) from EGRESS_ACTIVE to EGRESS_COMPLETE, per second of recorded media (ffprobe
  duration of the file).
- baseline: a bare PyAV encode, run right before each composite, unpaced, in its own process, of
  1280x720 yuv420p 30 fps showing what a 4-publisher grid shows (the generated publishers'
  pictures, drawn with numpy slice copies; libx264 `{' '.join(f'{k}={v}' for k, v in X264_OPTIONS.items())}`
  {VIDEO_KBPS} kbps, as pyegress's encoder sets it up) plus a {AUDIO_KBPS} kbps {AUDIO_RATE} Hz stereo AAC sine,
  into an MP4.
- receive floor: CPU-s per s of a hidden subscriber that receives the same tracks through pyegress's
  `RoomSource` (video I420, audio {LIVE_AUDIO_FRAME_MS} ms frames) and does nothing with them, measured right
  after the composite: the livekit SDK's share (RTP/SRTP, jitter buffers, VP8/Opus decode, native → Python
  frames). "ratio above floor" is (composite − floor) / baseline: pyegress's own work against the bare encode.
- peak RSS: the worker's, sampled every {RSS_SAMPLE_S} s. Latencies: ListEgress polled every
  {POLL_S * 1000:.0f} ms; start is StartRoomCompositeEgress → EGRESS_ACTIVE, stop is StopEgress → EGRESS_COMPLETE.
- other processes: CPUs used on average by processes outside the benchmark during the composite /
  the baseline (0 on a quiet machine; anything else competed with what was measured).

Per publisher count (ffprobe of the files):

{details}
{SECTION_END}
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="media seconds per recording (default 60)")
    p.add_argument("--publishers", default="1,2,4", help="comma-separated publisher counts (default 1,2,4)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "RESULTS.md",
                   help="Markdown file whose benchmark section is written/updated (default bench/RESULTS.md)")
    p.add_argument("--workdir", type=Path, default=None,
                   help="keep servers' state, logs and recordings here (default: a temporary directory)")
    args = p.parse_args(argv)
    counts = [int(c) for c in args.publishers.split(",") if c.strip()]
    if args.seconds <= 0 or not counts or min(counts) < 1:
        p.error("--seconds must be positive and --publishers a list of counts >= 1")

    warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)  # the dev key pair's 6-byte secret
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))  # unwind: servers and publishers stop
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="pyegress-bench-") as tmp:
        workdir = (args.workdir or Path(tmp)).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        rows = run_all(workdir, counts, args.seconds)
    print()
    print(table(rows))
    print(verdict(rows))
    for row in rows:
        if row.composite.fps < MIN_FPS:
            print(f"warning: the {row.composite.publishers}-publisher composite was recorded at "
                  f"{row.composite.fps:.2f} fps: the worker dropped frames")
    if (busiest := busiest_other_load(rows)) > 0.1:
        print(f"warning: other processes used up to {busiest:.2f} CPUs while this measured; the numbers are noisy")
    update_results(args.out, section(command_line(), rows, (load_before, os.getloadavg()[0])),
                   SECTION_START, SECTION_END)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
