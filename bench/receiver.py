"""Benchmark: the packet receiver alone, with pyegress's Go runtime settings and timer slack, and without.

Not a test. One livekit-server and ``--tracks`` generated publishers (640x360 VP8 + 48 kHz Opus each,
:func:`harness.start_publishers`); a receiver (``media/source/packets``, through
:class:`~pyegress.media.source.packets.stream.ReceiverProcess`, exactly as an egress starts it) joins
as a hidden participant and subscribes to every publisher's audio track (or video with ``--kind video``),
with the batching a composite of them asks for, while its frames are read and dropped. The variants
alternate ``--repeats`` times:

- ``go defaults``: ``GODEBUG=schedtrace=0`` (Go's own default), which
  :func:`~pyegress.media.source.packets.stream.receiver_env` leaves as it is, and the kernel's timer
  slack (50 µs);
- ``sysmon polling``: the environment an egress gives the receiver (``stream.GODEBUG``: Go's sysmon
  polls every 10 ms instead of parking between packets, docs/receiver.md), the kernel's timer slack;
- ``pyegress``: as an egress starts it, that environment and ``stream.TIMER_SLACK_MS`` of timer slack
  once in the room.

Each measures, from 3 s after subscribing for ``--seconds``: the receiver's CPU (user + system, cores),
its context switches per second (every thread's, from /proc/PID/task/*/status) and the samples it
handed over per second; the ratios are each variant's over Go's defaults, median of the repeats.

Usage::

    .venv/bin/python bench/receiver.py [--tracks 4] [--kind audio] [--seconds 20] [--repeats 3] [--out bench/RESULTS.md]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import psutil
from jwt.warnings import InsecureKeyLengthWarning
from livekit import api

from harness import (OtherLoad, code_version, command_line, create_room, machine, start_publishers, stop_process,
                     track_sids, update_results)
from pyegress.devtools.livekit_server import LIVEKIT_SERVER_VERSION, LiveKitServer
from pyegress.media.source.packets import BULK_FLUSH_MS
from pyegress.media.source.packets.stream import GODEBUG, TIMER_SLACK_MS, ReceiverProcess, Sample
from receive_floor import floor_token

VARIANTS = (("go defaults", "schedtrace=0", 0), ("sysmon polling", None, 0), ("pyegress", None, TIMER_SLACK_MS))
"""(name, GODEBUG set before starting the receiver (None: as an egress has it), timer slack (ms, 0: the
kernel's))."""
SETTLE_S = 3.0
"""Time after subscribing before measuring: the SFU's first keyframes and the jitter buffers filling."""
START, END = "<!-- bench/receiver.py: start -->", "<!-- bench/receiver.py: end -->"


@dataclass
class Run:
    """One variant's measurement: ``cores`` CPU-s/s, ``switches`` context switches/s, ``samples`` samples/s."""

    variant: str
    cores: float
    switches: float
    samples: float
    other_cpus: float


def context_switches(pid: int) -> int:
    """Voluntary + involuntary context switches of every thread of ``pid`` so far."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                total += sum(int(line.split()[1]) for line in f if line.startswith(("voluntary_ctxt",
                                                                                    "nonvoluntary_ctxt")))
        except FileNotFoundError:  # the thread exited meanwhile
            pass
    return total


async def measure(lk: LiveKitServer, room: str, sids: list[str], variant: str, godebug: str | None,
                  timer_slack_ms: int, seconds: float, audio_only: bool) -> Run:
    """Start a receiver with ``godebug`` (None: the egress default) and ``timer_slack_ms``, subscribe to
    ``sids``, measure."""
    saved = os.environ.get("GODEBUG")
    if godebug is not None:
        os.environ["GODEBUG"] = godebug
    try:
        receiver = ReceiverProcess(lk.url, floor_token(lk.api_key, lk.api_secret, room), audio_only=audio_only,
                                   flush_ms=BULK_FLUSH_MS if audio_only else 0,  # as a composite of them has it
                                   timer_slack_ms=timer_slack_ms)
        await receiver.start()
    finally:
        if saved is None:
            os.environ.pop("GODEBUG", None)
        else:
            os.environ["GODEBUG"] = saved
    samples = 0

    async def drain() -> None:
        nonlocal samples
        while (frames := await receiver.read()) is not None:
            samples += sum(isinstance(f, Sample) for f in frames)

    reader = asyncio.create_task(drain())
    await asyncio.sleep(2)  # joined by then
    for sid in sids:
        receiver.send("subscribe", sid)
    await asyncio.sleep(SETTLE_S)
    proc, load = psutil.Process(receiver.pid), OtherLoad()
    cpu0, sw0, n0, t0 = sum(proc.cpu_times()[:2]), context_switches(proc.pid), samples, time.monotonic()
    load.start()
    await asyncio.sleep(seconds)
    cpu1, sw1, n1, t1 = sum(proc.cpu_times()[:2]), context_switches(proc.pid), samples, time.monotonic()
    load.stop()
    await receiver.close()
    await reader
    wall = t1 - t0
    return Run(variant, (cpu1 - cpu0) / wall, (sw1 - sw0) / wall, (n1 - n0) / wall, load.cpus)


def report(runs: list[Run], args) -> str:
    by = {name: [r for r in runs if r.variant == name] for name, _, _ in VARIANTS}
    base = by["go defaults"]
    ratios = {name: statistics.median(o.cores / b.cores for b, o in zip(base, by[name]))
              for name in ("sysmon polling", "pyegress")}
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [START, "## The packet receiver alone: pyegress's Go runtime settings and timer slack vs Go's defaults", "",
             f"Command: `{command_line()}`", "",
             f"Date: {when}. Code: {code_version()}. Machine: {machine()}; livekit-server {LIVEKIT_SERVER_VERSION}. "
             f"One livekit-server and {args.tracks} generated publishers on this machine; the receiver subscribes to "
             f"their {args.kind} tracks and its frames are read and dropped; the variants alternate, "
             f"{args.repeats} times each, {args.seconds:.0f} s each, from {SETTLE_S:.0f} s after subscribing. "
             f"`go defaults`: `GODEBUG=schedtrace=0`, the kernel's timer slack; `sysmon polling`: "
             f"`GODEBUG={GODEBUG}` (docs/receiver.md); `pyegress`: that and {TIMER_SLACK_MS} ms of timer slack "
             "once in the room.", "",
             "| variant | runs | cores (median) | each run | context switches/s (median) | samples/s | other CPUs |",
             "|---|---:|---:|---|---:|---:|---:|"]
    for name, rs in by.items():
        lines.append(f"| {name} | {len(rs)} | {statistics.median(r.cores for r in rs):.4f} | "
                     f"{', '.join(f'{r.cores:.4f}' for r in rs)} | {statistics.median(r.switches for r in rs):.0f} | "
                     f"{statistics.median(r.samples for r in rs):.0f} | {max(r.other_cpus for r in rs):.2f} |")
    lines += ["", f"Over Go's defaults (median of the runs' ratios): sysmon polling {ratios['sysmon polling']:.2f}x "
              f"the CPU, pyegress {ratios['pyegress']:.2f}x.", END, ""]
    return "\n".join(lines)


async def run(args) -> str:
    workdir = Path(tempfile.mkdtemp(prefix="bench-receiver-"))
    with LiveKitServer(log_path=workdir / "livekit.log") as lk:
        room = "bench-receiver"
        await create_room(lk, room)
        publishers = start_publishers(lk, room, args.tracks, workdir / "publishers.log")
        try:
            kind = api.TrackType.AUDIO if args.kind == "audio" else api.TrackType.VIDEO
            sids = await track_sids(lk, room, kind)  # published: start_publishers returns then
            runs = []
            for _ in range(args.repeats):
                for name, godebug, slack in VARIANTS:
                    runs.append(await measure(lk, room, sids, name, godebug, slack, args.seconds,
                                              args.kind == "audio"))
                    r = runs[-1]
                    print(f"{name}: {r.cores:.4f} cores, {r.switches:.0f} switches/s, {r.samples:.0f} samples/s",
                          flush=True)
        finally:
            stop_process(publishers)
    return report(runs, args)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tracks", type=int, default=4, help="publishers, one track of each subscribed (default 4)")
    p.add_argument("--kind", choices=("audio", "video"), default="audio")
    p.add_argument("--seconds", type=float, default=20.0, help="measured seconds per run (default 20)")
    p.add_argument("--repeats", type=int, default=3, help="runs of each variant, alternated (default 3)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "RESULTS.md")
    args = p.parse_args()
    warnings.simplefilter("ignore", InsecureKeyLengthWarning)
    text = asyncio.run(run(args))
    update_results(args.out, text, START, END)
    print(text)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
