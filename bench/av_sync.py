"""Benchmark: audio/video offset in recordings, packet receiver vs livekit SDK, unloaded and loaded.

Not a test. A publisher whose picture and sound mark the same moments (the bar of
:class:`~pyegress.devtools.patterns.VideoPattern` passes a one-second mark as
:class:`~pyegress.devtools.patterns.AudioPattern` beeps) is recorded for ``--minutes`` by a participant egress
and by a room composite of its room (it alone), through each receive path (``pyegress serve`` with
``PYEGRESS_COMPOSITE_RECEIVER=sdk``, then ``=packets``), one egress at a time: unloaded, and loaded (a room
composite of 4 other publishers, 640x360, recording meanwhile on the same service). Each file's
audio-minus-video offset is read at every beep (``tests/media_checks.av_offsets_at``); per case the median and
the worst |offset| (targets: 20 ms and 40 ms).

Two publishers are the truth, each in its own room, both sending all the time:

- ``python``: the generated publisher (:mod:`pyegress.devtools.publisher`, the livekit rtc SDK: libwebrtc
  captures, queues and encodes its sound and picture);
- ``filepub``: the same pattern as VP8 IVF + Opus Ogg (``tests/support/media_file.py``) sent by
  ``tests/support/filepub`` (LiveKit's Go SDK, looping the files): each file's content is sent at its start
  time plus its position, pion's sender reports tie RTP time to that send time, and filepub reports both
  starts, so what this publisher itself puts between sound and picture is known (``start audio − start
  video``).

So the filepub recording's offset less filepub's own is the recording path's (SFU, receiver, pyegress), and
the Python publisher's offset less that path is the Python publisher's own.

Usage::

    .venv/bin/python bench/av_sync.py [--minutes 10] [--receivers sdk,packets] [--egresses participant,room]
                                      [--sources python,filepub] [--loads unloaded,loaded] [--out bench/RESULTS.md]
                                      [--workdir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import statistics
import tempfile
import time
import warnings
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from jwt.warnings import InsecureKeyLengthWarning
from livekit import api

from harness import (OtherLoad, WorkerMonitor, code_version, command_line, create_room, machine, start_publishers,
                     stop_process, update_results, wait_for)
from media_checks import av_offsets_at, bar_phases
from pyegress.devtools.livekit_server import LIVEKIT_SERVER_VERSION, LiveKitServer
from pyegress.devtools.patterns import BEEP_S
from pyegress.devtools.probe import ffprobe
from pyegress.devtools.pyegress_server import PyegressServer
from start_latency import wait_pool_idle, worker_of
from support.filepub import file_publisher
from support.media_file import write_publisher_ivf_ogg

RECEIVERS = ("sdk", "packets")
"""Values of ``PYEGRESS_COMPOSITE_RECEIVER``."""
EGRESSES = {"participant": "participant egress", "room": "room composite of 1"}
SOURCES = ("python", "filepub")
LOADS = ("unloaded", "loaded")
LOAD_PUBLISHERS = 4
"""Publishers of the composite recording beside the measured egress in the loaded cases."""
TARGET_MEDIAN_MS, TARGET_WORST_MS = 20.0, 40.0
"""Issue 14's targets for |audio − video| of a recording."""
LOOP_S = 10
"""Length of filepub's files (s), which it loops."""
POOL_SIZE = 3
"""pyegress's default ``handler_pool_size``: the pool is refilled and idle before each egress."""
IDENTITY = {"python": "pub-0", "filepub": "ref-0"}
"""Each source's participant identity."""

SECTION_START = "<!-- bench/av_sync.py: start -->"
SECTION_END = "<!-- bench/av_sync.py: end -->"


@dataclass
class Case:
    """One recording: ``source`` recorded by ``egress`` through ``receiver`` under ``load``; ``offsets_ms`` the
    audio-minus-video offset at each beep (positive: sound late), ``broken`` how many beeps were heard to start
    twice (their sound broke off and resumed: a gap, not an offset, so not in ``offsets_ms``), ``repeats`` the
    share of the file's frames showing the same picture as the one before (a source frame late or missing at a
    tick); CPU in cores."""

    receiver: str
    load: str
    source: str
    egress: str
    path: str
    media_s: float
    cores: float
    other_cpus: float
    offsets_ms: list[float] = field(default_factory=list)
    broken: int = 0
    repeats: float = 0.0

    @property
    def median_abs_ms(self) -> float:
        return statistics.median(abs(x) for x in self.offsets_ms)

    @property
    def p95_abs_ms(self) -> float:
        return statistics.quantiles([abs(x) for x in self.offsets_ms], n=20)[-1]

    @property
    def worst_abs_ms(self) -> float:
        return max(abs(x) for x in self.offsets_ms)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.offsets_ms)

    @property
    def met(self) -> bool:
        return self.median_abs_ms <= TARGET_MEDIAN_MS and self.worst_abs_ms <= TARGET_WORST_MS


async def record(lk: LiveKitServer, egress: PyegressServer, source: str, kind: str, room: str, seconds: float,
                 monitor: WorkerMonitor) -> tuple[str, float, OtherLoad]:
    """Record ``seconds`` of ``source`` in ``room`` by a ``kind`` egress (:data:`EGRESSES`): the file, the worker
    tree's CPU-s from ACTIVE to COMPLETE, and the other load meanwhile.

    Raises:
        RuntimeError: the egress failed or timed out.
    """
    output = [api.EncodedFileOutput(filepath=f"{{room_name}}-{kind}-{{time}}.mp4")]
    async with api.LiveKitAPI(egress.url, lk.api_key, lk.api_secret) as eg:
        if kind == "participant":
            info = await eg.egress.start_participant_egress(api.ParticipantEgressRequest(
                room_name=room, identity=IDENTITY[source], file_outputs=output))
        else:
            info = await eg.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
                room_name=room, file_outputs=output))
        await wait_for(eg, info.egress_id, api.EgressStatus.EGRESS_ACTIVE, 60)
        monitor.mark_active()
        other = OtherLoad()
        other.start()
        await asyncio.sleep(seconds)
        await eg.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
        info = await wait_for(eg, info.egress_id, api.EgressStatus.EGRESS_COMPLETE, 120)
        cpu_s = await asyncio.to_thread(monitor.cpu_since_active)
        other.stop()
    return info.file_results[0].location, cpu_s, other


@contextmanager
def load_composite(lk: LiveKitServer, egress: PyegressServer, workdir: Path, ignore: set[int]):
    """A room composite of :data:`LOAD_PUBLISHERS` generated publishers recording on ``egress`` while the block
    runs (its worker's pid goes into ``ignore``)."""
    room = f"sync-load-{int(time.time())}"
    asyncio.run(create_room(lk, room))
    pubs = start_publishers(lk, room, LOAD_PUBLISHERS, workdir / "load-publishers.log")

    async def start() -> str:
        async with api.LiveKitAPI(egress.url, lk.api_key, lk.api_secret) as eg:
            info = await eg.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
                room_name=room, file_outputs=[api.EncodedFileOutput(filepath="{room_name}-{time}.mp4")]))
            await wait_for(eg, info.egress_id, api.EgressStatus.EGRESS_ACTIVE, 60)
            return info.egress_id

    async def stop(egress_id: str) -> None:
        async with api.LiveKitAPI(egress.url, lk.api_key, lk.api_secret) as eg:
            await eg.egress.stop_egress(api.StopEgressRequest(egress_id=egress_id))
            await wait_for(eg, egress_id, api.EgressStatus.EGRESS_COMPLETE, 120)

    try:
        egress_id = asyncio.run(start())
        ignore.add(worker_of(egress, egress_id).pid)
        try:
            yield
        finally:
            asyncio.run(stop(egress_id))
    finally:
        stop_process(pubs)


def run(workdir: Path, seconds: float, receivers: list[str], egresses: list[str], sources: list[str],
        loads: list[str]) -> tuple[list[Case], float]:
    """Every case, recorded one after the other; returns them (files not analysed yet) and filepub's own offset
    in ms."""
    cases: list[Case] = []
    video, audio = workdir / "reference.ivf", workdir / "reference.ogg"
    write_publisher_ivf_ogg(video, audio, LOOP_S)
    with LiveKitServer(log_path=workdir / "livekit-server.log") as lk, ExitStack() as stack:
        rooms = {source: f"sync-{source}-{int(time.time())}" for source in SOURCES}
        for room in rooms.values():
            asyncio.run(create_room(lk, room))
        python = start_publishers(lk, rooms["python"], 1, workdir / "python-publisher.log")
        stack.callback(stop_process, python)
        reference = stack.enter_context(file_publisher(lk, rooms["filepub"], IDENTITY["filepub"], video=video,
                                                       audio=audio, log=workdir / "filepub.log"))
        own_ms = (reference.starts["audio"] - reference.starts["video"]) / 1e6
        for receiver in receivers:
            with PyegressServer(workdir / f"pyegress-{receiver}", lk.url, lk.api_key, lk.api_secret,
                                extra_env={"PYEGRESS_COMPOSITE_RECEIVER": receiver}) as egress:
                seen: set[int] = set()
                for load in loads:
                    with load_composite(lk, egress, workdir, seen) if load == "loaded" else ExitStack():
                        for source in sources:
                            for kind in egresses:
                                asyncio.run(wait_pool_idle(egress, POOL_SIZE))
                                print(f"{receiver}, {load}: {source} by {EGRESSES[kind]}, {seconds:g} s ...",
                                      flush=True)
                                monitor = WorkerMonitor(egress.pid, seen)
                                path, cpu_s, other = asyncio.run(
                                    record(lk, egress, source, kind, rooms[source], seconds, monitor))
                                seen.add(monitor.worker.pid)
                                monitor.wait_gone()
                                media_s = ffprobe(path).duration
                                cases.append(Case(receiver, load, source, kind, path, media_s, cpu_s / media_s,
                                                  other.cpus))
    return cases, own_ms


def analyse(case: Case) -> None:
    """Fill in ``case``'s offsets, broken beeps and repeated pictures from its file."""
    phases = bar_phases(case.path, skip_s=2.0)
    last = -1.0
    for t, offset in av_offsets_at(case.path, phases):
        if t - last < BEEP_S * 2:  # the beep's sound resumed after a gap: no new beep
            case.broken += 1
        else:
            case.offsets_ms.append(offset * 1000)
        last = t
    case.repeats = sum(a[1] == b[1] for a, b in zip(phases, phases[1:])) / max(1, len(phases) - 1)


# ---------------------------------------------------------------------------- report


def cases_table(cases: list[Case]) -> str:
    lines = ["| receiver | load | publisher | egress | beeps | broken beeps | median \\|offset\\| ms "
             "| p95 \\|offset\\| ms | worst \\|offset\\| ms | median offset ms | repeated frames | targets "
             "| egress cores | other CPUs |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for c in cases:
        lines.append(f"| {c.receiver} | {c.load} | {c.source} | {EGRESSES[c.egress]} | {len(c.offsets_ms)} "
                     f"| {c.broken} | {c.median_abs_ms:.1f} | {c.p95_abs_ms:.1f} | {c.worst_abs_ms:.1f} "
                     f"| {c.median_ms:+.1f} | {c.repeats:.1%} | {'met' if c.met else 'NOT met'} | {c.cores:.3f} "
                     f"| {c.other_cpus:.2f} |")
    return "\n".join(lines)


def split_table(cases: list[Case], own_ms: float) -> str:
    """Per receiver, egress and load: the recording path's offset (filepub's, less what filepub itself sends) and
    the Python publisher's own (its recording's, less that path)."""
    by = {(c.receiver, c.load, c.egress, c.source): c for c in cases}
    lines = ["| receiver | load | egress | recording path ms (filepub − its own) | Python publisher's own ms "
             "| Python publisher's recording ms |",
             "|---|---|---|---:|---:|---:|"]
    for (receiver, load, egress, source), c in by.items():
        ref = by.get((receiver, load, egress, "filepub"))
        if source != "python" or ref is None:
            continue
        path = ref.median_ms - own_ms
        lines.append(f"| {receiver} | {load} | {EGRESSES[egress]} | {path:+.1f} | {c.median_ms - path:+.1f} "
                     f"| {c.median_ms:+.1f} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def section(command: str, cases: list[Case], own_ms: float, seconds: float, load: tuple[float, float]) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    split = split_table(cases, own_ms)
    split = f"Where the offset comes from (medians, signed: positive is sound late):\n\n{split}\n\n" if split else ""
    return f"""{SECTION_START}
## A/V offset of recordings: packet receiver vs livekit SDK

Command: `{command}`

Date: {now}. Code: {code_version()}. Machine: {machine()}; Python {platform.python_version()}, livekit-server
{LIVEKIT_SERVER_VERSION}. 1-min load average {load[0]:.2f} before the run, {load[1]:.2f} after. livekit-server, one
`pyegress serve` per receive path (`PYEGRESS_COMPOSITE_RECEIVER`), both publishers (640x360 30 fps VP8, 48 kHz Opus,
no simulcast) and in the loaded cases the load composite's {LOAD_PUBLISHERS} publishers (640x360) all run on this
machine. Each recording lasts {seconds:g} s; egresses record 1280x720 30 fps H.264 + AAC to MP4 (default preset).

{cases_table(cases)}

Targets: median |offset| <= {TARGET_MEDIAN_MS:g} ms and worst |offset| <= {TARGET_WORST_MS:g} ms.

{split}- offset: at each beep after the first 2 s, the beep's onset in the sound less the moment the picture shows it
  (the bar's position in the frames around it), `tests/media_checks.av_offsets_at`; positive: sound late.
  beeps: how many were measured (one a second). broken beeps: beeps whose sound stopped and started again
  within {BEEP_S * 2000:.0f} ms (a gap in the sound), left out of the offsets.
- filepub's own offset (start of its audio less start of its video, as it reports them): {own_ms:+.2f} ms.
- repeated frames: frames of the file whose bar stands where it stood in the frame before (the publisher sends a
  new picture every frame; a repeat means none had come by that tick).
- egress cores: CPU-s of the egress worker tree (handler and, on the packets path, the Go receiver) from
  EGRESS_ACTIVE to EGRESS_COMPLETE per second of file. other CPUs: used on average by processes outside the
  benchmark meanwhile (0 on a quiet machine); the loaded cases' composite and publishers are inside it.
{SECTION_END}
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="length of each recording (default 10)")
    p.add_argument("--receivers", default=",".join(RECEIVERS))
    p.add_argument("--egresses", default=",".join(EGRESSES), help="participant, room (a room composite of 1)")
    p.add_argument("--sources", default=",".join(SOURCES))
    p.add_argument("--loads", default=",".join(LOADS))
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "RESULTS.md")
    p.add_argument("--workdir", type=Path, default=None,
                   help="keep servers' state, logs and recordings here (default: a temporary directory)")
    args = p.parse_args()
    chosen = {}
    for name, allowed in (("receivers", RECEIVERS), ("egresses", EGRESSES), ("sources", SOURCES),
                          ("loads", LOADS)):
        chosen[name] = [x.strip() for x in getattr(args, name).split(",") if x.strip()]
        if not chosen[name] or not set(chosen[name]) <= set(allowed):
            p.error(f"--{name} must name some of {', '.join(allowed)}")
    if args.minutes * 60 < 10:
        p.error("--minutes must cover at least 10 s")
    warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)  # the dev key pair's 6-byte secret
    seconds = args.minutes * 60
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="pyegress-bench-sync-") as tmp:
        workdir = (args.workdir or Path(tmp)).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        cases, own_ms = run(workdir, seconds, **chosen)
        load1 = os.getloadavg()[0]
        for case in cases:
            print(f"analysing {case.path} ...", flush=True)
            analyse(case)
    text = section(command_line(), cases, own_ms, seconds, (load0, load1))
    print(text)
    update_results(args.out, text, SECTION_START, SECTION_END)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
