"""What the benchmarks share: servers and publishers, polling an egress, measuring CPU (the worker's, the
machine's other load, a bare encode as the baseline), describing the machine and writing RESULTS.md.

Every benchmark imports this first; it puts ``tests/`` on ``sys.path`` so the test servers of
``tests/support`` (S3, Redis, RTMP, ...) are importable as ``support``. Run as a script only as the
baseline's subprocess (``--baseline-child``, see :func:`run_baseline`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import http.server
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import psutil
from livekit import api

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent / "tests"))

from pyegress.contract.encoding import EncodingSettings  # noqa: E402
from pyegress.devtools.livekit_server import LiveKitServer  # noqa: E402
from pyegress.devtools.probe import ffprobe  # noqa: E402
from pyegress.devtools.process import free_port  # noqa: E402
from pyegress.devtools.patterns import VideoPattern  # noqa: E402
from pyegress.handler.pooled import IDLE_LABEL  # noqa: E402
from pyegress.media.compose.video import i420_planes  # noqa: E402
from pyegress.media.encode.encoder import encoder_threads  # noqa: E402
from support.media_file import write_publisher_webm  # noqa: E402

PAGE_DIR = BENCH_DIR.parent / "tests" / "web"
"""The test pages web egress benchmarks record (see :func:`serve_pages`)."""

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
MIB = 1024 * 1024


# ---------------------------------------------------------------------------- baseline


def baseline_frames(count: int, width: int = WIDTH, height: int = HEIGHT):
    """Yield ``count`` yuv420p ``(H*3/2, W) uint8`` canvases (one reused array) for the baseline encode.

    Frame ``n`` is what a 4-publisher grid composite shows: a 2x2 grid of the generated
    publishers' pictures (:class:`~pyegress.devtools.patterns.VideoPattern` ``0..3`` at
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


def cpu_s(proc: psutil.Process) -> float:
    """User + system CPU time of ``proc`` in s, including its waited-for children."""
    t = proc.cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def tree_cpu_s(proc: psutil.Process) -> float:
    """User + system CPU time in s of ``proc`` and its live descendants."""
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


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
        return time.monotonic(), busy, tree_cpu_s(psutil.Process())

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
        cpu0, t0 = cpu_s(child), time.monotonic()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        if proc.stdout.readline().strip() != "done":
            raise RuntimeError("the baseline encode failed")
        cpu1, t1 = cpu_s(child), time.monotonic()
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


# ---------------------------------------------------------------------------- the egress worker, egresses


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
        self.peak_tree_rss = 0
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
        t = self.worker.cpu_times()  # its reaped children count too
        return tree_cpu_s(self.worker) + t.children_user + t.children_system

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
        """Update :attr:`peak_rss` (bytes) from the worker's current RSS and :attr:`peak_tree_rss` from the sum of
        its and its live descendants' RSS (ignored once it has exited)."""
        try:
            tree = self.worker.memory_info().rss
            children = self.worker.children(recursive=True)
        except psutil.NoSuchProcess:
            return
        self.peak_rss = max(self.peak_rss, tree)
        for child in children:
            try:
                tree += child.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        self.peak_tree_rss = max(self.peak_tree_rss, tree)

    def wait_gone(self, timeout_s: float = 30.0) -> None:
        """Until the worker has exited and been reaped (it closes its room connection after COMPLETE), so the
        next egress starts alone; says so if it has not within ``timeout_s``."""
        try:
            self.worker.wait(timeout_s)
        except psutil.TimeoutExpired:
            print(f"  its worker {self.worker.pid} is still running {timeout_s:g} s after COMPLETE", flush=True)

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


async def egress_status(eg: api.LiveKitAPI, egress_id: str) -> api.EgressInfo:
    return (await eg.egress.list_egress(api.ListEgressRequest(egress_id=egress_id))).items[0]


async def wait_for(eg: api.LiveKitAPI, egress_id: str, wanted: int, timeout_s: float) -> api.EgressInfo:
    """Poll ListEgress every :data:`POLL_S` until the status is ``wanted``.

    Raises:
        RuntimeError: the egress reached another final status, or ``timeout_s`` passed.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = await egress_status(eg, egress_id)
        if info.status == wanted:
            return info
        if info.status in (api.EgressStatus.EGRESS_FAILED, api.EgressStatus.EGRESS_ABORTED,
                           api.EgressStatus.EGRESS_LIMIT_REACHED, api.EgressStatus.EGRESS_COMPLETE):
            raise RuntimeError(f"egress {egress_id} ended {api.EgressStatus.Name(info.status)}: {info.error}")
        await asyncio.sleep(POLL_S)
    raise RuntimeError(f"egress {egress_id} did not reach {api.EgressStatus.Name(wanted)} in {timeout_s} s")


def start_publishers(lk: LiveKitServer, room: str, count: int, log_path: Path, *, width: int = 640,
                     height: int = 360, simulcast: bool = False) -> subprocess.Popen:
    """``count`` generated publishers of ``width`` x ``height`` (three simulcast layers if ``simulcast``) in
    their own process, returned once they have published.

    Raises:
        RuntimeError: the process exited before it was ready.
    """
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pyegress.devtools.publisher", "--url", lk.url, "--api-key", lk.api_key,
             "--api-secret", lk.api_secret, "--room", room, "--count", str(count), "--width", str(width),
             "--height", str(height), "--simulcast", str(simulcast).lower()],
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


async def track_sids(lk: LiveKitServer, room: str, track_type: int) -> list[str]:
    """The SIDs of the tracks of ``track_type`` (``api.TrackType``) published in ``room``, by participant."""
    async with api.LiveKitAPI(lk.http_url, lk.api_key, lk.api_secret) as lkapi:
        listed = (await lkapi.room.list_participants(api.ListParticipantsRequest(room=room))).participants
    return [t.sid for p in listed for t in p.tracks if t.type == track_type]



# ---------------------------------------------------------------------------- pages


def serve_pages(directory: Path) -> http.server.ThreadingHTTPServer:
    """``tests/web`` and the video its ``video.html`` plays, copied to ``directory``, over HTTP on a free
    loopback port, in a daemon thread."""
    directory.mkdir(parents=True, exist_ok=True)
    for page in PAGE_DIR.iterdir():
        shutil.copy(page, directory)
    write_publisher_webm(directory / "sync.webm", seconds=12)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


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


@contextlib.contextmanager
def checkout(ref: str, where: Path):
    """The project's source at git ``ref`` checked out (a detached worktree) at ``where``, for a server of that
    code measured next to this one in the same run: yields its ``src`` directory, to put first on
    ``PYTHONPATH``. Generated files git ignores (compiled protos) are copied from this checkout.

    Raises:
        subprocess.CalledProcessError: ``ref`` is not a commit of this repository.
    """
    root = Path(__file__).resolve().parent.parent
    subprocess.run(["git", "-C", str(root), "worktree", "add", "--detach", "--force", str(where), ref],
                   check=True, capture_output=True)
    try:
        for generated in (root / "src").rglob("*_pb2*.py*"):
            target = where / generated.relative_to(root)
            if not target.exists():
                shutil.copy2(generated, target)
        yield where / "src"
    finally:
        subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(where)], capture_output=True)


def update_results(path: Path, text: str, start: str, end: str) -> None:
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
    p = argparse.ArgumentParser(description="The baseline encode's subprocess (see run_baseline); not a benchmark.")
    p.add_argument("--baseline-child", type=Path, required=True, help="the MP4 to write")
    p.add_argument("--seconds", type=float, required=True, help="media seconds to encode")
    args = p.parse_args(argv)
    baseline_child(args.baseline_child, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
