"""Benchmark: what a web egress costs compared with encoding the same stream alone.

Not a test. It serves two pages of ``tests/web`` on loopback — ``page.html``
(worst case: a full-frame canvas redrawn every animation frame, a sweeping bar,
plus a WebAudio sine) and ``video.html`` (a 640x360 30 fps VP8/Opus video of the
generated publisher, scaled to the page, as a template shows a participant) —
records each with StartWebEgress through pyegress's Egress API at 1280x720 30 fps
(the default preset, H.264 + AAC, to an MP4), and measures

- CPU time (user + system, s) of the egress worker's whole process tree —
  the Python worker, Chromium's browser, renderer, GPU (software) and utility
  processes, PulseAudio and parec — while it records, per second, and per
  process name. It is sampled from the live processes every 0.5 s from
  EGRESS_ACTIVE until StopEgress: Chromium's helper processes are reaped by
  Chromium, not the worker, so their CPU time is lost once they exit;
- memory: peak RSS of the worker alone and peak PSS of the tree (proportional
  set size: shared pages split between the processes sharing them, so the sum
  is not inflated by Chromium's shared libraries), sampled every 0.5 s;
- smoothness: screencast pictures received and decoded per second (from the
  worker's log) and distinct pictures per second in the file (a decoded frame
  whose luma differs from the previous one's);
- start latency (StartWebEgress → EGRESS_ACTIVE: Chromium start and page load).

Right before, :func:`harness.run_baseline` measures the baseline: a bare
PyAV encode of 1280x720 30 fps H.264 + AAC with the same x264 options, as fast
as it can go. The ratio web/baseline is what rendering the page in a browser
and capturing it adds to the encode.

Usage::

    .venv/bin/python bench/web.py [--seconds 30] [--out bench/RESULTS.md] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import re
import signal
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import psutil
from jwt.warnings import InsecureKeyLengthWarning
from livekit import api

from harness import (MIB, RSS_SAMPLE_S, X264_OPTIONS, BaselineResult, OtherLoad, WorkerMonitor, code_version,
                     command_line, machine, run_baseline, serve_pages, update_results, wait_for)
from pyegress.devtools.probe import ffprobe
from pyegress.devtools.pyegress_server import PyegressServer

SCENARIOS = (("canvas redrawn every frame", "page.html?tone=660"), ("playing video", "video.html"))
"""(name, path and query of the page) of each measured web egress."""
API_KEY, API_SECRET = "devkey", "secret"
SECTION_START = "<!-- bench/web.py: start -->"
SECTION_END = "<!-- bench/web.py: end -->"


@dataclass
class WebResult:
    """One web egress recording (of page ``name``) of ``media_s`` (s, ffprobe). ``cpu_by_name``: CPU-s of the worker tree by
    process name over ``sampled_s`` s of recording; memory in bytes; pictures per second as described in
    the module doc."""

    name: str
    media_s: float
    sampled_s: float
    cpu_by_name: dict[str, float]
    peak_rss: int
    peak_tree_pss: int
    start_latency_s: float
    screencast_fps: float
    decoded_fps: float
    distinct_fps: float
    summary: str
    other_cpus: float

    @property
    def cpu_per_media_s(self) -> float:
        """CPU-seconds per second of recording (the tree runs in real time: a wall second is a media second)."""
        return sum(self.cpu_by_name.values()) / self.sampled_s


@dataclass
class TreeSampler:
    """Per-process CPU times and the tree's PSS of a worker and its descendants, sampled while it runs;
    ``t_first``/``t_last``: monotonic s of the first and last sample."""

    worker: psutil.Process
    peak_pss: int = 0
    t_first: float = 0.0
    t_last: float = 0.0
    first: dict[int, tuple[str, float]] = field(default_factory=dict)
    last: dict[int, tuple[str, float]] = field(default_factory=dict)

    def sample(self) -> None:
        self.t_last = time.monotonic()
        self.t_first = self.t_first or self.t_last
        pss = 0
        for p in [self.worker, *self.worker.children(recursive=True)]:
            try:
                with p.oneshot():
                    t = p.cpu_times()
                    entry = (p.name(), t.user + t.system)
                    pss += p.memory_full_info().pss
            except psutil.NoSuchProcess:
                continue
            self.first.setdefault(p.pid, entry)
            self.last[p.pid] = entry
        self.peak_pss = max(self.peak_pss, pss)

    def cpu_by_name(self) -> dict[str, float]:
        """CPU-s per process name between a process's first and last sample (processes alive at the end)."""
        out: dict[str, float] = {}
        for pid, (name, cpu) in self.last.items():
            out[name] = out.get(name, 0.0) + cpu - self.first[pid][1]
        return out


def distinct_pictures_per_s(path: Path) -> float:
    """Decoded frames whose luma differs from the previous frame's (mean absolute difference > 0.5), per s."""
    distinct, previous, duration = 0, None, 0.0
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            y = frame.to_ndarray(format="gray").astype(np.int16)
            if previous is not None and np.abs(y - previous).mean() > 0.5:
                distinct += 1
            previous, duration = y, float(frame.time or duration)
    return distinct / duration if duration else 0.0


def screencast_counts(log_path: Path) -> tuple[int, int]:
    """``(received, decoded)`` screencast frames from a web egress worker's log."""
    match = re.search(r"screencast: (\d+) frames received, (\d+) decoded", log_path.read_text(errors="replace"))
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


async def record_web(egress: PyegressServer, name: str, url: str, seconds: float,
                     monitor: WorkerMonitor) -> WebResult:
    """Record ``seconds`` of ``url`` at the default preset (720p30) and measure it.

    Raises:
        RuntimeError: the egress failed or timed out.
    """
    async with api.LiveKitAPI(egress.url, API_KEY, API_SECRET) as eg:
        t0 = time.monotonic()
        info = await eg.egress.start_web_egress(api.WebEgressRequest(
            url=url, file_outputs=[api.EncodedFileOutput(filepath="bench-web-{time}.mp4")]))
        await wait_for(eg, info.egress_id, api.EgressStatus.EGRESS_ACTIVE, 60)
        start_latency = time.monotonic() - t0
        monitor.mark_active()
        tree = TreeSampler(monitor.worker)
        other = OtherLoad()
        other.start()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            monitor.sample_rss()
            await asyncio.to_thread(tree.sample)
            await asyncio.sleep(RSS_SAMPLE_S)
        await asyncio.to_thread(tree.sample)
        other.stop()  # before StopEgress: Chromium's CPU is ours only while its processes are alive to count
        await eg.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
        info = await wait_for(eg, info.egress_id, api.EgressStatus.EGRESS_COMPLETE, 120)
    path = Path(info.file_results[0].location)
    probe = ffprobe(path)
    received, decoded = screencast_counts(egress.workdir / "logs" / f"{info.egress_id}.log")
    return WebResult(name, probe.duration, tree.t_last - tree.t_first, tree.cpu_by_name(), monitor.peak_rss, tree.peak_pss, start_latency,
                     received / probe.duration, decoded / probe.duration, distinct_pictures_per_s(path),
                     probe.summary(), other.cpus)


def run(workdir: Path, seconds: float) -> tuple[list[WebResult], BaselineResult]:
    """The baseline encode, then a web egress of each of :data:`SCENARIOS`, each ``seconds`` of media.
    No livekit-server is needed: a web egress joins no room."""
    pages = serve_pages(workdir / "pages")
    results = []
    try:
        with PyegressServer(workdir / "pyegress", "ws://127.0.0.1:1", API_KEY, API_SECRET) as egress:
            print(f"baseline encode of {seconds:g} s ...", flush=True)
            baseline = run_baseline(workdir / "baseline.mp4", seconds)
            seen: set[int] = set()
            for name, page in SCENARIOS:
                print(f"web egress of the {name} page: recording {seconds:g} s ...", flush=True)
                monitor = WorkerMonitor(egress.pid, seen)
                url = f"http://127.0.0.1:{pages.server_address[1]}/{page}"
                results.append(asyncio.run(record_web(egress, name, url, seconds, monitor)))
                seen.add(monitor.worker.pid)
    finally:
        pages.shutdown()
    return results, baseline


def section(command: str, results: list[WebResult], baseline: BaselineResult, load: tuple[float, float]) -> str:
    """The RESULTS.md section of this run, between its markers."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rows = "\n".join(
        f"| {w.name} | {w.media_s:.2f} | {w.cpu_per_media_s:.3f} | {baseline.cpu_per_media_s:.3f} "
        f"| {w.cpu_per_media_s / baseline.cpu_per_media_s:.2f} | {w.peak_rss / MIB:.0f} | {w.peak_tree_pss / MIB:.0f} "
        f"| {w.screencast_fps:.1f} | {w.decoded_fps:.1f} | {w.distinct_fps:.1f} | {w.start_latency_s * 1000:.0f} "
        f"| {w.other_cpus:.2f} |" for w in results)
    by_name = "\n".join(
        f"  - {w.name}: " + ", ".join(f"{n} {cpu / w.sampled_s:.3f}" for n, cpu in
                                      sorted(w.cpu_by_name.items(), key=lambda kv: -kv[1]))
        + f"; file {w.summary}" for w in results)
    return f"""{SECTION_START}
## Web egress (headless Chromium) vs bare x264 encode

Command: `{command}`

Date: {now}. Code: {code_version()}. Machine: {machine()}; Python {platform.python_version()},
PyAV {av.__version__}. 1-min load average {load[0]:.2f} before the run, {load[1]:.2f} after.
Pages from `tests/web`, recorded at 1280x720 30 fps H.264 + AAC (default preset) to an MP4.

| page | media s | CPU-s/media-s | baseline CPU-s/media-s | ratio | worker peak RSS MiB | tree peak PSS MiB | screencast fps | decoded fps | distinct pictures/s | start latency ms | other CPUs |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
{rows}

- CPU-s/media-s: user + system CPU of the worker's process tree (Python worker, every Chromium
  process, PulseAudio, parec), sampled from the live processes from EGRESS_ACTIVE to StopEgress,
  per second. By process (CPU-s/media-s):
{by_name}
- baseline: a bare PyAV encode, unpaced, in its own process, of 1280x720 yuv420p 30 fps (libx264
  `{' '.join(f'{k}={v}' for k, v in X264_OPTIONS.items())}`) plus a stereo AAC sine, into an MP4:
  {baseline.cpu_s:.1f} CPU-s in {baseline.wall_s:.1f} s wall, {baseline.summary}; other processes
  {baseline.other_cpus:.2f} CPUs meanwhile.
- pages: "canvas redrawn every frame" is `page.html?tone=660` (worst case: every pixel changes 60
  times a second); "playing video" is `video.html`, a 640x360 30 fps VP8/Opus video scaled to the page.
- screencast fps: JPEG pictures Chromium sent per media second (`Page.startScreencast`, every
  compositor frame); decoded fps: of those, the ones a tick decoded (the newest at each 30 fps tick);
  distinct pictures/s: frames in the file that differ from the previous one (at most what the page
  shows: 60 for the canvas, 30 for the video). `HeadlessExperimental.beginFrame`, the other way to
  pace pictures, is not in Debian's Chromium (new headless mode answers "'HeadlessExperimental.beginFrame'
  wasn't found"), so it was not measured.
- other CPUs: used on average by processes outside the benchmark meanwhile (0 on a quiet machine).{busy_note(results)}
{SECTION_END}
"""


BUSY_CPUS = 0.5
"""Other processes using more CPUs than this on average made a measurement unrepresentative."""


def busy_note(results: list[WebResult]) -> str:
    """A warning line for the section when other processes competed with a web egress, else ""."""
    busy = [w.name for w in results if w.other_cpus > BUSY_CPUS]
    if not busy:
        return ""
    return (f"\n- **Busy machine** during: {', '.join(busy)}. Chromium got less CPU than the page asked for, so it "
            "sent fewer pictures and spent less: those CPU figures are low and the picture rates too; rerun on a "
            "quiet machine.")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=30.0, help="media seconds per recording (default 30)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "RESULTS.md",
                   help="Markdown file whose web egress section is written/updated (default bench/RESULTS.md)")
    p.add_argument("--workdir", type=Path, default=None, help="keep state, logs and recordings here")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="pyegress-bench-web-") as tmp:
        workdir = (args.workdir or Path(tmp)).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        results, baseline = run(workdir, args.seconds)
    text = section(command_line(), results, baseline, (load_before, os.getloadavg()[0]))
    print(text)
    update_results(args.out, text, SECTION_START, SECTION_END)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
