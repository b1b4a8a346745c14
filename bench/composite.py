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
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import psutil
from jwt.warnings import InsecureKeyLengthWarning
from livekit import api

from pyegress.devtools.livekit_server import LIVEKIT_SERVER_VERSION, LiveKitServer
from pyegress.devtools.probe import ffprobe
from pyegress.devtools.publisher import VideoPattern
from pyegress.media.pipeline import LIVE_AUDIO_FRAME_MS
from receive_floor import Floor, measure_floor
from pyegress.devtools.pyegress_server import PyegressServer
from pyegress.media.compose.video import i420_planes
from pyegress.media.encode.encoder import encoder_threads
from pyegress.handler.pooled import IDLE_LABEL
from pyegress.contract.encoding import EncodingSettings

WIDTH, HEIGHT, FPS = 1280, 720, 30
"""The composite's output (LiveKit's default preset H264_720P_30): pixels, frames per second."""
VIDEO_KBPS = 3000
"""Video bitrate in kbps."""
GOP_FRAMES = 120
"""Keyframe interval in frames (pyegress's default: 4 s at 30 fps)."""
X264_OPTIONS = {"preset": "veryfast", "profile": "main", "g": str(GOP_FRAMES), "keyint_min": str(GOP_FRAMES),
                "sc_threshold": "0", "bf": "2", "threads": str(encoder_threads(EncodingSettings()))}
"""libx264 options of the baseline: the ones pyegress's encoder uses for the default 720p30 ``h264_main``
(including its thread count), so the ratio measures what pyegress adds to the encode."""
AUDIO_RATE = 48_000
"""Audio sample rate in Hz."""
AUDIO_KBPS = 128
"""Audio bitrate in kbps."""
TONE_HZ = 440.0
"""Frequency of the baseline's audio sine in Hz."""
AAC_FRAME = 1024
"""Samples per channel in one AAC frame."""

POLL_S = 0.02
"""ListEgress polling period in s (the resolution of the latencies)."""
RSS_SAMPLE_S = 0.5
"""Worker RSS sampling period in s."""
TARGET_RATIO = 1.3
"""The issue's target: a 4-publisher composite costs at most this many times the baseline CPU."""
TARGET_PUBLISHERS = 4
MIN_FPS = FPS - 0.5
"""A composite recorded at fewer frames per second than this dropped frames: its CPU is not comparable."""
MIB = 1024 * 1024

SECTION_START = "<!-- bench/composite.py: start -->"
SECTION_END = "<!-- bench/composite.py: end -->"


# ---------------------------------------------------------------------------- baseline


def baseline_frames(count: int, width: int = WIDTH, height: int = HEIGHT):
    """Yield ``count`` yuv420p ``(H*3/2, W) uint8`` canvases (one reused array) for the baseline encode.

    Frame ``n`` is what a 4-publisher grid composite shows: a 2x2 grid of the generated
    publishers' pictures (:class:`~pyegress.devtools.publisher.VideoPattern` ``0..3`` at
    tile size, frame ``n``: coloured background, sweeping bar, frame counter), drawn and
    placed with numpy slice copies.
    """
    tw, th = width // 2 & ~1, height // 2 & ~1
    patterns = [VideoPattern(tw, th, FPS, i) for i in range(4)]
    canvas = np.zeros((height * 3 // 2, width), dtype=np.uint8)
    y_plane = canvas[:height]
    chroma = canvas[height:].reshape(2, height // 2, width // 2)
    for n in range(count):
        for i, pattern in enumerate(patterns):
            x, y = i % 2 * tw, i // 2 * th
            src_y, src_u, src_v = i420_planes(pattern.render(n), tw, th)
            y_plane[y: y + th, x: x + tw] = src_y
            chroma[0, y // 2: (y + th) // 2, x // 2: (x + tw) // 2] = src_u
            chroma[1, y // 2: (y + th) // 2, x // 2: (x + tw) // 2] = src_v
        yield canvas


def encode_baseline(path: Path, seconds: float) -> None:
    """Encode ``seconds`` of media into an MP4 at ``path`` as fast as possible (not paced).

    Video: :func:`baseline_frames` at 1280x720 30 fps, libx264 with :data:`X264_OPTIONS`
    at 3000 kbps. Audio: a 440 Hz sine, AAC 128 kbps 48 kHz stereo, interleaved with the video.
    """
    frames = round(seconds * FPS)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=FPS, options=X264_OPTIONS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.bit_rate = VIDEO_KBPS * 1000
        video.codec_context.time_base = Fraction(1, FPS)
        audio = container.add_stream("aac", rate=AUDIO_RATE)
        audio.layout = "stereo"
        audio.bit_rate = AUDIO_KBPS * 1000
        audio_pts = 0
        for n, canvas in enumerate(baseline_frames(frames)):
            frame = av.VideoFrame.from_ndarray(canvas, format="yuv420p")
            frame.pts, frame.time_base = n, Fraction(1, FPS)
            container.mux(video.encode(frame))
            while audio_pts * FPS <= n * AUDIO_RATE:
                t = (audio_pts + np.arange(AAC_FRAME)) / AUDIO_RATE
                wave = (0.25 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32)
                samples = av.AudioFrame.from_ndarray(np.stack([wave, wave]), format="fltp", layout="stereo")
                samples.sample_rate, samples.pts = AUDIO_RATE, audio_pts
                samples.time_base = Fraction(1, AUDIO_RATE)
                container.mux(audio.encode(samples))
                audio_pts += AAC_FRAME
        container.mux(video.encode(None))
        container.mux(audio.encode(None))


def baseline_child(path: Path, seconds: float) -> None:
    """The baseline subprocess: ``ready`` → waits for a line on stdin → encodes → ``done`` → waits for EOF.

    The handshake lets the parent read this process's CPU time right before and
    right after the encode, so interpreter start-up and imports are not counted.
    """
    print("ready", flush=True)
    sys.stdin.readline()
    encode_baseline(path, seconds)
    print("done", flush=True)
    sys.stdin.read()


@dataclass
class BaselineResult:
    """The baseline encode: ``media_s`` of media (s, from ffprobe) took ``cpu_s`` CPU-s in ``wall_s`` s.

    ``other_cpus``: CPUs used on average by processes outside the benchmark meanwhile (see :class:`OtherLoad`).
    """

    media_s: float
    cpu_s: float
    wall_s: float
    summary: str
    other_cpus: float

    @property
    def cpu_per_media_s(self) -> float:
        """CPU-seconds per media-second."""
        return self.cpu_s / self.media_s


def _cpu_s(proc: psutil.Process) -> float:
    """User + system CPU time of ``proc`` in s, including its waited-for children."""
    t = proc.cpu_times()
    return t.user + t.system + t.children_user + t.children_system


class OtherLoad:
    """CPU used on this machine by processes outside this benchmark's process tree, between :meth:`start` and :meth:`stop`.

    Machine busy time (user + nice + system + irq + softirq over all CPUs) minus the
    user + system time of this process and its live descendants (livekit-server,
    ``pyegress serve``, its worker, the publishers, the baseline), averaged over the
    wall time: :attr:`cpus` is in CPUs (0.5 = half a core busy on average). Our own
    processes that exit in between would count as others; none do.
    """

    def __init__(self) -> None:
        self.cpus = 0.0
        self._start = (0.0, 0.0, 0.0)

    @staticmethod
    def _now() -> tuple[float, float, float]:
        t = psutil.cpu_times()
        busy = t.user + t.nice + t.system + t.irq + t.softirq
        me = psutil.Process()
        own = 0.0
        for p in [me, *me.children(recursive=True)]:
            try:
                c = p.cpu_times()
                own += c.user + c.system
            except psutil.NoSuchProcess:
                pass
        return time.monotonic(), busy, own

    def start(self) -> None:
        self._start = self._now()

    def stop(self) -> None:
        (t0, busy0, own0), (t1, busy1, own1) = self._start, self._now()
        self.cpus = max(0.0, (busy1 - busy0) - (own1 - own0)) / (t1 - t0)


def run_baseline(path: Path, seconds: float) -> BaselineResult:
    """Run :func:`baseline_child` in a subprocess and measure its CPU time across the encode.

    Raises:
        RuntimeError: the subprocess failed.
    """
    proc = subprocess.Popen([sys.executable, __file__, "--baseline-child", str(path), "--seconds", str(seconds)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the baseline subprocess did not start")
        child = psutil.Process(proc.pid)
        other = OtherLoad()
        other.start()
        cpu0, t0 = _cpu_s(child), time.monotonic()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        if proc.stdout.readline().strip() != "done":
            raise RuntimeError("the baseline encode failed")
        cpu1, t1 = _cpu_s(child), time.monotonic()
        other.stop()
        proc.stdin.close()
        if proc.wait(30) != 0:
            raise RuntimeError(f"the baseline subprocess exited with code {proc.returncode}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    probe = ffprobe(path)
    return BaselineResult(probe.duration, cpu1 - cpu0, t1 - t0, probe.summary(), other.cpus)


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


class WorkerMonitor:
    """The egress worker process of ``pyegress serve`` (pid ``serve_pid``): CPU time and RSS.

    The worker tree's CPU time is its own user + system time, that of its live
    descendants, and that of the descendants it has waited for. Should the worker
    have exited by the end of the measurement, its lifetime CPU time is found in
    serve's ``children_user``/``children_system`` instead, once serve has reaped it.
    """

    def __init__(self, serve_pid: int, ignore: set[int]) -> None:
        self.serve = psutil.Process(serve_pid)
        self.ignore = ignore
        self.worker: psutil.Process | None = None
        self.peak_rss = 0
        self._reaped0 = 0.0
        self._tree0 = 0.0

    def find(self) -> psutil.Process | None:
        """The serve process's child running ``pyegress.worker`` for an egress (not one idle in the worker pool)
        whose pid is not in ``ignore``, once there is one."""
        if self.worker is None:
            for child in self.serve.children():
                try:
                    cmdline = child.cmdline()
                    if (child.pid not in self.ignore and "pyegress.handler" in " ".join(cmdline)
                            and IDLE_LABEL not in cmdline):
                        self.worker = child
                        break
                except psutil.NoSuchProcess:
                    continue
        return self.worker

    def _reaped_s(self) -> float:
        t = self.serve.cpu_times()
        return t.children_user + t.children_system

    def _tree_s(self) -> float:
        total = _cpu_s(self.worker)
        for p in self.worker.children(recursive=True):
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total

    def mark_active(self) -> None:
        """Start the CPU measurement now.

        Raises:
            RuntimeError: no worker process was found.
        """
        if self.find() is None:
            raise RuntimeError("no pyegress.worker child of pyegress serve")
        self._reaped0, self._tree0 = self._reaped_s(), self._tree_s()
        self.sample_rss()

    def sample_rss(self) -> None:
        """Update :attr:`peak_rss` (bytes) from the worker's current RSS (ignored once it has exited)."""
        try:
            self.peak_rss = max(self.peak_rss, self.worker.memory_info().rss)
        except psutil.NoSuchProcess:
            pass

    def cpu_since_active(self, timeout_s: float = 30.0) -> float:
        """The worker tree's CPU-s since :meth:`mark_active`.

        Raises:
            psutil.TimeoutExpired: the worker has exited but serve did not reap it within ``timeout_s``.
        """
        try:
            return self._tree_s() - self._tree0
        except psutil.NoSuchProcess:
            self.worker.wait(timeout_s)
            return self._reaped_s() - self._reaped0 - self._tree0


async def _status(eg: api.LiveKitAPI, egress_id: str) -> api.EgressInfo:
    return (await eg.egress.list_egress(api.ListEgressRequest(egress_id=egress_id))).items[0]


async def _wait_for(eg: api.LiveKitAPI, egress_id: str, wanted: int, timeout_s: float) -> api.EgressInfo:
    """Poll ListEgress every :data:`POLL_S` until the status is ``wanted``.

    Raises:
        RuntimeError: the egress reached another final status, or ``timeout_s`` passed.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = await _status(eg, egress_id)
        if info.status == wanted:
            return info
        if info.status in (api.EgressStatus.EGRESS_FAILED, api.EgressStatus.EGRESS_ABORTED,
                           api.EgressStatus.EGRESS_LIMIT_REACHED, api.EgressStatus.EGRESS_COMPLETE):
            raise RuntimeError(f"egress {egress_id} ended {api.EgressStatus.Name(info.status)}: {info.error}")
        await asyncio.sleep(POLL_S)
    raise RuntimeError(f"egress {egress_id} did not reach {api.EgressStatus.Name(wanted)} in {timeout_s} s")


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
        await _wait_for(eg, info.egress_id, api.EgressStatus.EGRESS_ACTIVE, 60)
        start_latency = time.monotonic() - t0
        monitor.mark_active()
        other = OtherLoad()
        other.start()
        sampler = asyncio.create_task(_sample_rss(monitor))
        try:
            await asyncio.sleep(seconds)
            t1 = time.monotonic()
            await eg.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
            info = await _wait_for(eg, info.egress_id, api.EgressStatus.EGRESS_COMPLETE, 120)
            stop_latency = time.monotonic() - t1
            cpu_s = await asyncio.to_thread(monitor.cpu_since_active)
            other.stop()
        finally:
            sampler.cancel()
    probe = ffprobe(info.file_results[0].location)
    return CompositeResult(publishers, probe.duration, cpu_s, monitor.peak_rss, start_latency, stop_latency,
                           probe.summary(), other.cpus, probe.video_fps)


def start_publishers(lk: LiveKitServer, room: str, count: int, log_path: Path) -> subprocess.Popen:
    """``count`` generated publishers in their own process, returned once they have published.

    Raises:
        RuntimeError: the process exited before it was ready.
    """
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pyegress.devtools.publisher", "--url", lk.url, "--api-key", lk.api_key,
             "--api-secret", lk.api_secret, "--room", room, "--count", str(count)],
            stdout=subprocess.PIPE, stderr=log, text=True)
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        proc.wait()
        raise RuntimeError(f"publishers did not start; see {log_path}")
    return proc


def stop_process(proc: subprocess.Popen, timeout_s: float = 10.0) -> None:
    """SIGTERM ``proc`` and wait; SIGKILL it after ``timeout_s``."""
    proc.terminate()
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def create_room(lk: LiveKitServer, room: str) -> None:
    """Create ``room`` on livekit-server."""
    async with api.LiveKitAPI(lk.http_url, lk.api_key, lk.api_secret) as lkapi:
        await lkapi.room.create_room(api.CreateRoomRequest(name=room))


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


def machine() -> str:
    """``"<nproc> CPUs, <model name>"`` from the scheduler affinity and /proc/cpuinfo."""
    model = platform.processor() or "unknown CPU"
    try:
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        model = match.group(1).strip() if match else model
    except OSError:
        pass
    return f"{len(os.sched_getaffinity(0))} CPUs (nproc), {model}"


def code_version() -> str:
    """The project's ``git describe --always --dirty`` (``-dirty``: uncommitted changes), or ``unknown``."""
    try:
        return subprocess.run(["git", "-C", str(Path(__file__).resolve().parent), "describe", "--always", "--dirty"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


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


def update_results(path: Path, text: str, start: str = SECTION_START, end: str = SECTION_END) -> None:
    """Replace the section between the markers ``start`` and ``end`` of ``path`` with ``text``
    (append it if absent; create the file)."""
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.DOTALL)
    if pattern.search(old):
        new = pattern.sub(lambda _m: text, old, count=1)
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new)


def command_line() -> str:
    """This process's command line as typed from the project root (the interpreter path relative if it can be)."""
    exe = os.path.relpath(sys.executable)
    return shlex.join([sys.executable if exe.startswith("..") else exe, *sys.argv])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="media seconds per recording (default 60)")
    p.add_argument("--publishers", default="1,2,4", help="comma-separated publisher counts (default 1,2,4)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "RESULTS.md",
                   help="Markdown file whose benchmark section is written/updated (default bench/RESULTS.md)")
    p.add_argument("--workdir", type=Path, default=None,
                   help="keep servers' state, logs and recordings here (default: a temporary directory)")
    p.add_argument("--baseline-child", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.baseline_child is not None:
        baseline_child(args.baseline_child, args.seconds)
        return 0
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
    update_results(args.out, section(command_line(), rows, (load_before, os.getloadavg()[0])))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
