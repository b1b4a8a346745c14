"""Benchmark: what a room composite costs compared with encoding the same stream alone.

Not a test. For 1, 2 and 4 generated publishers it records a room composite
through pyegress's Egress API against a real livekit-server, and measures

- the CPU time (user + system, s) of the egress worker process tree
  (``python -m pyegress.handler``, a child of ``pyegress serve``, and its children: the Go packet
  receiver on the ``packets`` path) between EGRESS_ACTIVE and EGRESS_COMPLETE, per second of recorded media;
- the tree's peak RSS (MiB, the sum over its processes), sampled every 0.5 s;
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

``--receivers sdk,packets`` records each composite once per receive path (``pyegress serve`` with
``PYEGRESS_COMPOSITE_RECEIVER``), each with its own baseline right before it, and also reports packets/sdk.
``--audio-only`` adds an audio-only composite of the same publishers per path (no baseline: the
target is absolute). ``--repeats N`` records every composite N times and reports medians. Issue 14's
scenario, 4 browser-like publishers (720p, simulcast) into a 720p grid::

    .venv/bin/python bench/composite.py --publishers 4 --size 1280x720 --simulcast --receivers sdk,packets \\
        --audio-only --repeats 3

A run comparing receivers writes its own section of RESULTS.md, so the single-path one stays.
``--against REF`` also records every composite with the code of git commit ``REF`` (a worktree of it,
first on ``PYTHONPATH`` of its own ``pyegress serve``), right after this code's, and reports this code's
CPU as a ratio to that (issue 15: the participant-tile presentation against the bare tiles before it)::

    .venv/bin/python bench/composite.py --publishers 4 --size 1280x720 --simulcast --receivers packets \
        --against 97f4466 --repeats 3 --seconds 30

and writes that to a section of its own too.

Publishers run in their own process, so their CPU is not counted. The machine
is shared, so every measurement also reports how much CPU processes outside the
benchmark used meanwhile (:class:`OtherLoad`); run it on a quiet machine.

Usage::

    .venv/bin/python bench/composite.py [--seconds 60] [--publishers 1,2,4] [--size 640x360] [--simulcast]
                                        [--receivers sdk] [--audio-only] [--repeats 1] [--out bench/RESULTS.md]
                                        [--against REF] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
import warnings
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import av
import psutil
from jwt.warnings import InsecureKeyLengthWarning
from livekit import api

from harness import (AUDIO_KBPS, AUDIO_RATE, FPS, MIB, POLL_S, RSS_SAMPLE_S, VIDEO_KBPS, X264_OPTIONS,
                     BaselineResult, OtherLoad, WorkerMonitor, checkout, code_version, command_line, create_room,
                     machine, run_baseline, start_publishers, stop_process, track_sids, update_results, wait_for)
from pyegress.devtools.livekit_server import LIVEKIT_SERVER_VERSION, LiveKitServer
from pyegress.devtools.probe import ffprobe
from pyegress.devtools.pyegress_server import PyegressServer
from pyegress.media.pipeline import BULK_AUDIO_FRAME_MS, LIVE_AUDIO_FRAME_MS
from receive_floor import Floor, measure_floor
from start_latency import wait_pool_idle
from web import TreeSampler

TARGET_RATIO = 1.3
"""The issue's target: a 4-publisher composite costs at most this many times the baseline CPU."""
TARGET_PUBLISHERS = 4
TARGET_AUDIO_CORES = 0.03
"""Issue 14's target for an audio-only composite of 4 publishers, in cores."""
MIN_FPS = FPS - 0.5
"""A composite recorded at fewer frames per second than this dropped frames: its CPU is not comparable."""
RECEIVERS = ("sdk", "packets")
"""Values of ``PYEGRESS_COMPOSITE_RECEIVER``."""
POOL_SIZE = 3
"""pyegress's default ``handler_pool_size``: the pool is refilled and idle before each egress, so its imports do
not compete with the one measured."""

SECTION_START = "<!-- bench/composite.py: start -->"
SECTION_END = "<!-- bench/composite.py: end -->"
RECEIVERS_SECTION_START = "<!-- bench/composite.py receivers: start -->"
RECEIVERS_SECTION_END = "<!-- bench/composite.py receivers: end -->"
AGAINST_SECTION_START = "<!-- bench/composite.py against: start -->"
AGAINST_SECTION_END = "<!-- bench/composite.py against: end -->"
#: ``--against``: this code may cost at most this much more than the other (issue 15: labels and highlights +5%)
TARGET_AGAINST = 1.05


# ---------------------------------------------------------------------------- composite


@dataclass
class CompositeResult:
    """One recorded composite. Times in s, memory in bytes; ``media_s`` and ``fps`` (frames per
    second) are the file's, from ffprobe: fewer than 30 fps means the worker did not keep up
    and dropped frames, so it did less work than the baseline.

    ``other_cpus``: CPUs used on average by processes outside the benchmark from ACTIVE to
    COMPLETE (see :class:`OtherLoad`). ``by_process``: the tree's CPU-s by process name over ``sampled_s``
    (ACTIVE to StopEgress); ``receiver_bytes``: what the Go receiver wrote to the handler meanwhile (its
    samples: how much of each track the SFU sent; 0 on the sdk path); ``layers``: see :func:`forwarded_layers`.
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
    sampled_s: float
    by_process: dict[str, float] = field(default_factory=dict)
    receiver_bytes: int = 0
    layers: list[int] = field(default_factory=list)

    @property
    def cpu_per_media_s(self) -> float:
        """CPU-seconds per media-second."""
        return self.cpu_s / self.media_s

    def shares(self) -> str:
        """CPU-s per s of each process of the tree."""
        return ", ".join(f"{name} {cpu / self.sampled_s:.3f}"
                         for name, cpu in sorted(self.by_process.items(), key=lambda x: -x[1]))


async def _sample_rss(monitor: WorkerMonitor) -> None:
    while True:
        monitor.sample_rss()
        await asyncio.sleep(RSS_SAMPLE_S)


def forwarded_layers(log_path: Path, identity: str, sids: set[str]) -> list[int]:
    """The simulcast layer (0: lowest) livekit-server forwarded last to participant ``identity`` (an egress's
    recorder is named by its egress ID) for each video track of ``sids``, from its debug log: a forwarder's
    "starting forwarding" and "switching feed" lines (livekit-server v1.13.5)."""
    needle = f'"participant": "{identity}"'
    layers: dict[str, int] = {}
    with open(log_path, errors="replace") as log:
        for line in log:
            if needle in line and ("starting forwarding" in line or "switching feed" in line):
                fields = json.loads(line[line.index("{"):])
                if fields["trackID"] in sids:
                    layers[fields["trackID"]] = fields["layer"]
    return [layers[sid] for sid in sorted(layers)]


def _receiver_written(worker: psutil.Process) -> int:
    """Bytes the worker's Go receiver has written so far (its frame stream to the handler), 0 without one."""
    for child in worker.children(recursive=True):
        try:
            if child.name() == "receiver":
                return child.io_counters().write_chars
        except psutil.NoSuchProcess:
            pass
    return 0


async def record_composite(lk: LiveKitServer, egress: PyegressServer, room: str, publishers: int,
                           seconds: float, monitor: WorkerMonitor, *, audio_only: bool = False) -> CompositeResult:
    """Record ``seconds`` of a room composite of ``room`` (publishers already in it) and measure it.

    Raises:
        RuntimeError: the egress failed or timed out.
    """
    filepath = "bench-{room_name}-audio.ogg" if audio_only else "bench-{room_name}.mp4"
    async with api.LiveKitAPI(egress.url, lk.api_key, lk.api_secret) as eg:
        t0 = time.monotonic()
        info = await eg.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
            room_name=room, audio_only=audio_only, file_outputs=[api.EncodedFileOutput(filepath=filepath)]))
        await wait_for(eg, info.egress_id, api.EgressStatus.EGRESS_ACTIVE, 60)
        start_latency = time.monotonic() - t0
        monitor.mark_active()
        tree = TreeSampler(monitor.worker)
        await asyncio.to_thread(tree.sample)
        written0 = _receiver_written(monitor.worker)
        other = OtherLoad()
        other.start()
        sampler = asyncio.create_task(_sample_rss(monitor))
        try:
            await asyncio.sleep(seconds)
            await asyncio.to_thread(tree.sample)
            written = _receiver_written(monitor.worker) - written0
            t1 = time.monotonic()
            await eg.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
            info = await wait_for(eg, info.egress_id, api.EgressStatus.EGRESS_COMPLETE, 120)
            stop_latency = time.monotonic() - t1
            cpu_s = await asyncio.to_thread(monitor.cpu_since_active)
            other.stop()
        finally:
            sampler.cancel()
    probe = ffprobe(info.file_results[0].location)
    return CompositeResult(publishers, probe.duration, cpu_s, monitor.peak_tree_rss, start_latency, stop_latency,
                           probe.summary(), other.cpus, probe.video_fps, tree.t_last - tree.t_first,
                           tree.cpu_by_name(), written, forwarded_layers(
                               lk.log_path, info.egress_id, set(await track_sids(lk, room, api.TrackType.VIDEO))))


@dataclass
class Row:
    """One composite through ``receiver`` (repetition ``repeat``); a video one with the baseline encode run right
    before it, and on the sdk path the receive floor (:mod:`receive_floor`) measured on the same tracks."""

    composite: CompositeResult
    receiver: str
    repeat: int = 0
    audio_only: bool = False
    baseline: BaselineResult | None = None
    floor: Floor | None = None

    @property
    def key(self) -> tuple[int, str, bool]:
        """What is repeated: publishers, receive path, audio only."""
        return self.composite.publishers, self.receiver, self.audio_only

    @property
    def ratio(self) -> float:
        """Composite CPU-s per media-s over the baseline's."""
        return self.composite.cpu_per_media_s / self.baseline.cpu_per_media_s

    @property
    def own_ratio(self) -> float:
        """What the composite costs on top of receiving the room, over the baseline: pyegress's own work
        (compose, mix, encode, mux) compared with the bare encode."""
        return (self.composite.cpu_per_media_s - self.floor.cores) / self.baseline.cpu_per_media_s


def run_all(workdir: Path, counts: list[int], seconds: float, *, receivers: tuple[str, ...] = ("sdk",),
            width: int = 640, height: int = 360, simulcast: bool = False, audio_only: bool = False,
            repeats: int = 1, against: str | None = None) -> list[Row]:
    """For each publisher count, ``repeats`` times: for each receive path the baseline encode and then the
    composite (and the audio-only composite if ``audio_only``), each ``seconds`` of media; then the sdk path's
    receive floors.

    The baseline is run again next to each composite because this machine's speed
    drifts between minutes (the same encode has taken 0.34 and 0.53 CPU-s/media-s
    on a quiet machine); every ratio compares measurements taken a minute apart.
    One livekit-server and one ``pyegress serve`` per receive path serve every composite;
    the paths record the same publishers one after the other. With ``against`` (a git ref), each path is
    also served by that commit's code, as receiver ``path@ref``, right after this code's.
    """
    rows = []
    with LiveKitServer(log_path=workdir / "livekit-server.log") as lk, ExitStack() as servers:
        env = {r: {"PYEGRESS_COMPOSITE_RECEIVER": r} for r in receivers}
        if against:
            src = servers.enter_context(checkout(against, workdir / "against"))
            env |= {f"{r}@{against}": {"PYEGRESS_COMPOSITE_RECEIVER": r, "PYTHONPATH": str(src)} for r in receivers}
            receivers = tuple(env)
        egresses = {r: servers.enter_context(PyegressServer(
            workdir / f"pyegress-{r}", lk.url, lk.api_key, lk.api_secret, extra_env=env[r])) for r in receivers}
        seen_workers: dict[str, set[int]] = {r: set() for r in receivers}

        def record(count: int, room: str, receiver: str, audio_only: bool) -> CompositeResult:
            egress = egresses[receiver]
            asyncio.run(wait_pool_idle(egress, POOL_SIZE))
            monitor = WorkerMonitor(egress.pid, seen_workers[receiver])
            what = "audio-only composite" if audio_only else "composite"
            print(f"{count} publisher(s), {receiver}: recording the {what} for {seconds:g} s ...", flush=True)
            result = asyncio.run(record_composite(lk, egress, room, count, seconds, monitor, audio_only=audio_only))
            seen_workers[receiver].add(monitor.worker.pid)
            monitor.wait_gone()
            print(f"  {result.cpu_per_media_s:.3f} CPU-s/media-s ({result.shares()}), "
                  f"other CPUs {result.other_cpus:.2f}", flush=True)
            return result

        for count in counts:
            room = f"bench-{count}p-{int(time.time())}"
            asyncio.run(create_room(lk, room))
            pubs = start_publishers(lk, room, count, workdir / f"publishers-{count}.log", width=width, height=height,
                                    simulcast=simulcast)
            try:
                for repeat in range(repeats):
                    for receiver in receivers:
                        print(f"{count} publisher(s), {receiver}: baseline encode of {seconds:g} s ...", flush=True)
                        baseline = run_baseline(workdir / f"baseline-{count}-{receiver}-{repeat}.mp4", seconds)
                        rows.append(Row(record(count, room, receiver, False), receiver, repeat, baseline=baseline))
                        if audio_only:
                            rows.append(Row(record(count, room, receiver, True), receiver, repeat, audio_only=True))
                if "sdk" in receivers:
                    for only_audio in (False, True) if audio_only else (False,):
                        kinds = ("audio",) if only_audio else ("audio", "video")
                        print(f"{count} publisher(s): receive floor ({'+'.join(kinds)}) for {seconds:g} s ...",
                              flush=True)
                        floor = measure_floor(lk.url, lk.api_key, lk.api_secret, room, seconds, kinds=kinds,
                                              tracks=len(kinds) * count,
                                              audio_frame_ms=BULK_AUDIO_FRAME_MS if only_audio else LIVE_AUDIO_FRAME_MS)
                        for row in rows:
                            if row.key == (count, "sdk", only_audio):
                                row.floor = floor
            finally:
                stop_process(pubs)
    return rows


# ---------------------------------------------------------------------------- report


@dataclass
class Summary:
    """The repetitions of one composite (``rows``): medians of each measure (peak RSS: the highest), and "vs
    sdk", the median over repetitions of its CPU over the sdk path's of the same repetition (None on sdk)."""

    rows: list[Row]
    versus_sdk: float | None

    def median(self, measure) -> float:
        return statistics.median(measure(row) for row in self.rows)

    @property
    def first(self) -> Row:
        return self.rows[0]

    @property
    def cpu(self) -> float:
        return self.median(lambda r: r.composite.cpu_per_media_s)

    @property
    def min_fps(self) -> float:
        return min(r.composite.fps for r in self.rows)


def summaries(rows: list[Row]) -> list[Summary]:
    """One :class:`Summary` per composite, in the order first recorded."""
    groups: dict[tuple[int, str, bool], list[Row]] = {}
    for row in rows:
        groups.setdefault(row.key, []).append(row)
    out = []
    for (publishers, receiver, audio_only), group in groups.items():
        sdk = {r.repeat: r for r in groups.get((publishers, "sdk", audio_only), [])}
        ratios = [r.composite.cpu_per_media_s / sdk[r.repeat].composite.cpu_per_media_s
                  for r in group if r.repeat in sdk]
        out.append(Summary(group, statistics.median(ratios) if receiver == "packets" and ratios else None))
    return out


def against_verdict(rows: list[Row]) -> str:
    """This code against ``--against``'s, per composite: the median of the runs' CPU ratios (same repetition)."""
    by_key = {(r.composite.publishers, r.receiver, r.audio_only, r.repeat): r for r in rows}
    sentences = []
    for s in summaries(rows):
        row = s.first
        if "@" in row.receiver:
            continue
        others = [k for k in by_key if k[0] == row.composite.publishers and k[2] == row.audio_only
                  and k[1].startswith(row.receiver + "@")]
        if not others:
            continue
        ref = others[0][1]
        ratios = [r.composite.cpu_per_media_s / by_key[(*others[0][:3], r.repeat)].composite.cpu_per_media_s
                  for r in s.rows if (*others[0][:3], r.repeat) in by_key]
        ratio = statistics.median(ratios)
        what = f"{row.composite.publishers}-publisher {'audio-only ' if row.audio_only else ''}composite"
        sentences.append(f"This code against {ref.split('@', 1)[1]} ({row.receiver}, {what}): {ratio:.3f}x the CPU "
                         f"(runs: {', '.join(f'{x:.3f}' for x in ratios)}; bound {TARGET_AGAINST}x: "
                         f"{'met' if ratio <= TARGET_AGAINST else 'NOT met'}).")
    return " ".join(sentences)


def _process_cells(s: Summary) -> str:
    """The cells both tables end with: tree peak RSS (MiB), start and stop latency (ms), other CPUs."""
    return (f"{max(r.composite.peak_rss for r in s.rows) / MIB:.0f} "
            f"| {s.median(lambda r: r.composite.start_latency_s) * 1000:.0f} "
            f"| {s.median(lambda r: r.composite.stop_latency_s) * 1000:.0f} "
            f"| {s.median(lambda r: r.composite.other_cpus):.2f}")


def table(rows: list[Row]) -> str:
    """The composites with video as a Markdown table (medians over repetitions)."""
    lines = ["| publishers | receiver | runs | media s | CPU-s/media-s | baseline CPU-s/media-s | ratio | vs sdk "
             "| receive floor | ratio above floor | tree peak RSS MiB | start latency ms | stop latency ms "
             "| other CPUs |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in summaries(rows):
        if s.first.audio_only:
            continue
        floor = f"{s.first.floor.cores:.3f} | {s.median(lambda r: r.own_ratio):.2f}" if s.first.floor else " | "
        versus = f"{s.versus_sdk:.2f}" if s.versus_sdk is not None else ""
        lines.append(f"| {s.first.composite.publishers} | {s.first.receiver} | {len(s.rows)} "
                     f"| {s.median(lambda r: r.composite.media_s):.2f} | {s.cpu:.3f} "
                     f"| {s.median(lambda r: r.baseline.cpu_per_media_s):.3f} | {s.median(lambda r: r.ratio):.2f} "
                     f"| {versus} | {floor} | {_process_cells(s)} |")
    return "\n".join(lines)


def audio_table(rows: list[Row]) -> str:
    """The audio-only composites as a Markdown table (medians over repetitions; empty without any)."""
    lines = ["| publishers | receiver | runs | media s | CPU-s/media-s (cores) | vs sdk | receive floor | above floor "
             "| tree peak RSS MiB | start latency ms | stop latency ms | other CPUs |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in summaries(rows):
        if not s.first.audio_only:
            continue
        floor = f"{s.first.floor.cores:.3f} | {s.cpu - s.first.floor.cores:.3f}" if s.first.floor else " | "
        versus = f"{s.versus_sdk:.2f}" if s.versus_sdk is not None else ""
        lines.append(f"| {s.first.composite.publishers} | {s.first.receiver} | {len(s.rows)} "
                     f"| {s.median(lambda r: r.composite.media_s):.2f} | {s.cpu:.4f} | {versus} | {floor} "
                     f"| {_process_cells(s)} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def verdict(rows: list[Row]) -> str:
    """Whether the issue's targets hold (on the medians), a sentence per receive path."""
    sentences = []
    compared = len({r.receiver for r in rows}) > 1
    for s in summaries(rows):
        row = s.first
        if row.composite.publishers != TARGET_PUBLISHERS:
            continue
        path = f" ({row.receiver})" if compared else ""
        if row.audio_only:
            sentences.append(f"Target: audio-only composite of {TARGET_PUBLISHERS}{path} <= {TARGET_AUDIO_CORES} "
                             f"core: {s.cpu:.3f}, {'met' if s.cpu <= TARGET_AUDIO_CORES else 'NOT met'}.")
            continue
        ratio = s.median(lambda r: r.ratio)
        head = f"Target: {TARGET_PUBLISHERS}-publisher composite{path} <= {TARGET_RATIO}x baseline: {ratio:.2f}x"
        if s.min_fps < MIN_FPS:
            sentences.append(f"{head}, not comparable: the worker kept up with only {s.min_fps:.2f} of {FPS} "
                             "fps (it dropped frames, so it encoded less than the baseline).")
            continue
        floor = ""
        if row.floor:
            baseline = s.median(lambda r: r.baseline.cpu_per_media_s)
            floor = (f" Receiving the room alone (the livekit SDK) costs {row.floor.cores:.3f} CPU-s/media-s, "
                     f"{row.floor.cores / baseline:.2f}x the baseline; above that floor the composite costs "
                     f"{s.median(lambda r: r.own_ratio):.2f}x the bare encode.")
        sentences.append(f"{head}, {'met' if ratio <= TARGET_RATIO else 'NOT met'}.{floor}")
    return " ".join(sentences) or (f"Target: {TARGET_PUBLISHERS}-publisher composite <= {TARGET_RATIO}x baseline "
                                   "(not measured in this run).")


def busiest_other_load(rows: list[Row]) -> float:
    """The most CPUs that processes outside the benchmark used during any one measurement."""
    return max(x.other_cpus for row in rows for x in (row.composite, row.baseline) if x is not None)


def markers(compared: bool, against: bool = False) -> tuple[str, str]:
    """The RESULTS.md section of a run: its own for one comparing receive paths, and for one against other code."""
    if against:
        return AGAINST_SECTION_START, AGAINST_SECTION_END
    return (RECEIVERS_SECTION_START, RECEIVERS_SECTION_END) if compared else (SECTION_START, SECTION_END)


def section(command: str, rows: list[Row], load: tuple[float, float], publishers: str) -> str:
    """The RESULTS.md section of this run, between its markers; ``load`` is the 1-min load average before and after,
    ``publishers`` says what each publisher sends."""
    receivers = sorted({row.receiver for row in rows}, key=lambda r: (RECEIVERS.index(r.split("@")[0]), r))
    against = next((r.split("@", 1)[1] for r in receivers if "@" in r), None)
    compared = len(receivers) > 1
    start, end = markers(compared, against is not None)
    title = (f"Room composite: this code vs {against}, and vs bare x264 encode" if against
             else "Room composite: packet receiver vs livekit SDK, and vs bare x264 encode" if compared
             else "Room composite vs bare x264 encode")
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    runs = max(row.repeat for row in rows) + 1
    details = "\n".join(
        f"- {row.composite.publishers} publisher(s), {row.receiver}"
        f"{', audio only' if row.audio_only else ''}{f', run {row.repeat + 1}' if runs > 1 else ''}: "
        f"{row.composite.cpu_per_media_s:.3f} CPU-s/media-s"
        f"{f' ({row.ratio:.2f}x its baseline)' if row.baseline else ''}, other CPUs {row.composite.other_cpus:.2f}; "
        f"{row.composite.summary}; by process (CPU-s/s, ACTIVE to StopEgress): {row.composite.shares()}"
        + (f"; the receiver handed over {row.composite.receiver_bytes * 8 / 1000 / row.composite.sampled_s:.0f} "
           "kbps of samples" if row.composite.receiver_bytes else "")
        + (f"; simulcast layers forwarded at the end: {', '.join(map(str, row.composite.layers))}"
           if row.composite.layers else "")
        + (f"; baseline {row.baseline.cpu_s:.1f} CPU-s in {row.baseline.wall_s:.1f} s wall, {row.baseline.summary}, "
           f"other processes {row.baseline.other_cpus:.2f} CPUs meanwhile" if row.baseline else "")
        for row in rows)
    audio = audio_table(rows)
    audio = f"\nAudio-only composites (OGG, Opus):\n\n{audio}\n" if audio else ""
    repeated = (f" Each composite was recorded {runs} times, the paths one after the other; the tables give "
                "medians (peak RSS: the highest)." if runs > 1 else "")
    paths = (f"one `pyegress serve` per receive path (`PYEGRESS_COMPOSITE_RECEIVER={'`, `'.join(receivers)}`), "
             "the paths recording the same publishers one after the other" if compared
             else f"`pyegress serve` (`PYEGRESS_COMPOSITE_RECEIVER={receivers[0]}`)")
    return f"""{start}
## {title}

Command: `{command}`

Date: {now}. Code: {code_version()}. Machine: {machine()}; Python {platform.python_version()},
PyAV {av.__version__}, livekit-server {LIVEKIT_SERVER_VERSION}. 1-min load average {load[0]:.2f} before
the run, {load[1]:.2f} after. livekit-server, {paths}, and the publishers (one process,
{publishers} each) run on the same machine as the worker.{repeated}

{table(rows)}
{audio}
{verdict(rows)} {against_verdict(rows)}

- CPU-s/media-s: user + system CPU time of the egress worker process tree (`python -m
  pyegress.handler` and its children: on the packets path the Go receiver, counted live and once reaped)
  from EGRESS_ACTIVE to EGRESS_COMPLETE, per second of recorded media (ffprobe duration of the file).
- baseline: a bare PyAV encode, run right before each composite, unpaced, in its own process, of
  1280x720 yuv420p 30 fps showing what a 4-publisher grid shows (the generated publishers'
  pictures, drawn with numpy slice copies; libx264 `{' '.join(f'{k}={v}' for k, v in X264_OPTIONS.items())}`
  {VIDEO_KBPS} kbps, as pyegress's encoder sets it up) plus a {AUDIO_KBPS} kbps {AUDIO_RATE} Hz stereo AAC sine,
  into an MP4. "vs sdk": the packets path's CPU over the sdk path's for the same composite (median of the
  runs' ratios).
- simulcast layers forwarded at the end: what livekit-server's log says it last forwarded to the recorder, per video
  track (0: quarter size, 2: full size; a 1280x720 publisher's tile in a 2x2 grid of 1280x720 fits layer 1).
- receive floor (sdk path only): CPU-s per s of a hidden subscriber that receives the same tracks through
  pyegress's `RoomSource` (video I420, audio {LIVE_AUDIO_FRAME_MS} ms frames; audio only: {BULK_AUDIO_FRAME_MS} ms),
  doing nothing with them, measured right after the composites: the livekit SDK's share (RTP/SRTP, jitter
  buffers, VP8/Opus decode, native → Python frames). "ratio above floor" is (composite − floor) / baseline:
  pyegress's own work against the bare encode.
- tree peak RSS: the sum over the worker's process tree, sampled every {RSS_SAMPLE_S} s. Latencies: ListEgress
  polled every {POLL_S * 1000:.0f} ms; start is StartRoomCompositeEgress → EGRESS_ACTIVE, stop is StopEgress →
  EGRESS_COMPLETE. The handler pool is refilled and idle before each egress.
- other CPUs: used on average by processes outside the benchmark during the composite (0 on a quiet machine;
  anything else competed with what was measured).

Per composite (ffprobe of the files):

{details}
{end}
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="media seconds per recording (default 60)")
    p.add_argument("--publishers", default="1,2,4", help="comma-separated publisher counts (default 1,2,4)")
    p.add_argument("--size", default="640x360", help="each publisher's video, WxH (default 640x360)")
    p.add_argument("--simulcast", action="store_true", help="publishers send three simulcast layers")
    p.add_argument("--receivers", default="sdk",
                   help=f"comma-separated receive paths, of {', '.join(RECEIVERS)} (default sdk)")
    p.add_argument("--audio-only", action="store_true", help="also an audio-only composite per count and path")
    p.add_argument("--repeats", type=int, default=1, help="record each composite this many times (medians)")
    p.add_argument("--against", default=None, metavar="REF",
                   help="also record each composite with the code of this git commit (receivers PATH@REF)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "RESULTS.md",
                   help="Markdown file whose benchmark section is written/updated (default bench/RESULTS.md)")
    p.add_argument("--workdir", type=Path, default=None,
                   help="keep servers' state, logs and recordings here (default: a temporary directory)")
    args = p.parse_args(argv)
    counts = [int(c) for c in args.publishers.split(",") if c.strip()]
    receivers = tuple(r.strip() for r in args.receivers.split(",") if r.strip())
    width, _, height = args.size.partition("x")
    if args.seconds <= 0 or not counts or min(counts) < 1 or args.repeats < 1:
        p.error("--seconds and --repeats must be positive and --publishers a list of counts >= 1")
    if not receivers or not set(receivers) <= set(RECEIVERS):
        p.error(f"--receivers must name some of {', '.join(RECEIVERS)}")
    if not (width.isdigit() and height.isdigit()):
        p.error("--size must be WxH")

    warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)  # the dev key pair's 6-byte secret
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))  # unwind: servers and publishers stop
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="pyegress-bench-") as tmp:
        workdir = (args.workdir or Path(tmp)).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        rows = run_all(workdir, counts, args.seconds, receivers=receivers, width=int(width), height=int(height),
                       simulcast=args.simulcast, audio_only=args.audio_only, repeats=args.repeats,
                       against=args.against)
    print()
    print(table(rows))
    print(audio_table(rows))
    print(verdict(rows), against_verdict(rows))
    for row in rows:
        if not row.audio_only and row.composite.fps < MIN_FPS:
            print(f"warning: the {row.composite.publishers}-publisher composite ({row.receiver}) was recorded at "
                  f"{row.composite.fps:.2f} fps: the worker dropped frames")
    if (busiest := busiest_other_load(rows)) > 0.1:
        print(f"warning: other processes used up to {busiest:.2f} CPUs while this measured; the numbers are noisy")
    publishers = f"{args.size} {FPS} fps{', 3 simulcast layers' if args.simulcast else ''}"
    text = section(command_line(), rows, (load_before, os.getloadavg()[0]), publishers)
    update_results(args.out, text, *markers(len(set(receivers)) > 1, args.against is not None))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
