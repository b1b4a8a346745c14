"""Benchmark: start latency with and without the worker pool, admission under a burst, and what each egress
type costs in CPU (the ``cpu_cost`` defaults).

Not a test. Against a real livekit-server with 2 generated publishers (640x360 30 fps, one process), each
part through a real ``pyegress serve`` and livekit-api's own client:

1. **CPU per egress type** (``--cost-seconds``, 0 skips): room composite and its audio-only form, participant,
   track composite, track egress (video to WebM, audio to OGG), web egress (``tests/web/video.html`` in
   Chromium) and its audio-only form, one at a time; user + system CPU of the worker's process tree (Chromium
   and PulseAudio included) from EGRESS_ACTIVE over ``--cost-seconds``, in cores.
2. **Start latency**: for each ``--pools`` size (0: no pool), ``pyegress serve`` with
   ``PYEGRESS_HANDLER_POOL_SIZE`` set and a CPU budget large enough to admit every start; then 1, 3 and 6 room
   composites started at once (``--repeats`` groups of 1, fewer of 3 and 6), each timed from its
   StartRoomCompositeEgress call to the first ListEgress (polled every 20 ms) that shows it EGRESS_ACTIVE.
   Each group is stopped once all are active; the next starts once the pool has refilled.
3. **Burst**: ``--burst`` composites started at once against the default budget and pool: how many were
   admitted and refused (``resource_exhausted``), how long the refusals and the admitted starts took, and
   ListEgress latency meanwhile (one call every 20 ms from the burst until 3 s after the last admitted one
   went active).

Usage::

    .venv/bin/python bench/start_latency.py [--pools 0,2,3] [--repeats 5] [--burst 20] [--cost-seconds 15]
        [--out bench/RESULTS.md]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import math
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from jwt.warnings import InsecureKeyLengthWarning
from livekit import api

from harness import (OtherLoad, code_version, command_line, machine, serve_pages, start_publishers, stop_process,
                     tree_cpu_s, update_results)
from pyegress.service.admission import machine_cores
from pyegress.config import CPUCostConfig, Settings
from pyegress.devtools.livekit_server import LiveKitServer
from pyegress.devtools.pyegress_server import PyegressServer
from pyegress.handler.pooled import IDLE_LABEL

SECTION_START, SECTION_END = "<!-- bench/start_latency.py: start -->", "<!-- bench/start_latency.py: end -->"
S = api.EgressStatus
ENDED = (S.EGRESS_COMPLETE, S.EGRESS_FAILED, S.EGRESS_ABORTED, S.EGRESS_LIMIT_REACHED)
GROUPS = (1, 3, 6)
POLL_S = 0.02
ACTIVE_TIMEOUT_S = 60.0


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0-100) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def composite(room: str, name: str, audio_only: bool = False) -> api.RoomCompositeEgressRequest:
    return api.RoomCompositeEgressRequest(room_name=room, layout="grid", audio_only=audio_only,
                                          file_outputs=[api.EncodedFileOutput(filepath=f"{name}.mp4")])


def serve(workdir: Path, lk: LiveKitServer, **env: str) -> PyegressServer:
    return PyegressServer(workdir, lk.url, lk.api_key, lk.api_secret, extra_env=env).start(timeout_s=60)


def pooled(server: PyegressServer) -> list[psutil.Process]:
    return [p for p in psutil.Process(server.pid).children() if IDLE_LABEL in p.cmdline()]


def worker_of(server: PyegressServer, egress_id: str) -> psutil.Process:
    (proc,) = [p for p in psutil.Process(server.pid).children() if egress_id in p.cmdline()]
    return proc


async def wait_pool_idle(server: PyegressServer, size: int, timeout_s: float = 60.0) -> None:
    """Until the pool holds ``size`` processes that have finished importing (no CPU over 0.3 s)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        procs = pooled(server)
        if len(procs) == size:
            before = [tree_cpu_s(p) for p in procs]
            await asyncio.sleep(0.3)
            if all(tree_cpu_s(p) - b < 0.01 for p, b in zip(procs, before)):
                return
        else:
            await asyncio.sleep(0.1)
    raise RuntimeError(f"the pool did not fill to {size} in {timeout_s} s")


async def wait_status(lk: api.LiveKitAPI, egress_ids: list[str], done, timeout_s: float = ACTIVE_TIMEOUT_S
                      ) -> dict[str, float]:
    """Poll ListEgress every 20 ms until ``done(info)`` for every egress; returns the monotonic time each was
    first seen so."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout_s
    while len(seen) < len(egress_ids) and time.monotonic() < deadline:
        for info in (await lk.egress.list_egress(api.ListEgressRequest())).items:
            if info.egress_id in egress_ids and info.egress_id not in seen and done(info):
                seen[info.egress_id] = time.monotonic()
        await asyncio.sleep(POLL_S)
    return seen


async def stop_all(lk: api.LiveKitAPI, egress_ids: list[str]) -> None:
    for egress_id in egress_ids:
        try:
            await lk.egress.stop_egress(api.StopEgressRequest(egress_id=egress_id))
        except api.TwirpError:
            pass  # it ended by itself
    await wait_status(lk, egress_ids, lambda i: i.status in ENDED)


# ---- 1. CPU per egress type ---------------------------------------------------------------------------------

@dataclass
class Cost:
    name: str
    cores: float
    key: str  # the cpu_cost key it sets the default of
    other_cpus: float


async def measure_costs(workdir: Path, lk: LiveKitServer, room: str, seconds: float) -> list[Cost]:
    pages = serve_pages(workdir / "pages")
    page_url = f"http://127.0.0.1:{pages.server_address[1]}/video.html"
    server = serve(workdir / "costs", lk)
    try:
        async with api.LiveKitAPI(server.url, lk.api_key, lk.api_secret) as eg, \
                api.LiveKitAPI(lk.http_url, lk.api_key, lk.api_secret) as lkapi:
            participants = (await lkapi.room.list_participants(api.ListParticipantsRequest(room=room))).participants
            first = participants[0]
            video = next(t.sid for t in first.tracks if t.type == api.TrackType.VIDEO)
            audio = next(t.sid for t in first.tracks if t.type == api.TrackType.AUDIO)

            def files(name: str) -> list[api.EncodedFileOutput]:
                return [api.EncodedFileOutput(filepath=name)]

            kinds = [  # (what, cpu_cost key, start call)
                ("room composite, 2 publishers", "room_composite_cpu_cost",
                 lambda: eg.egress.start_room_composite_egress(composite(room, "cost-composite"))),
                ("audio-only room composite, 2 publishers", "audio_room_composite_cpu_cost",
                 lambda: eg.egress.start_room_composite_egress(composite(room, "cost-audio", audio_only=True))),
                ("participant egress (camera + microphone)", "participant_cpu_cost",
                 lambda: eg.egress.start_participant_egress(api.ParticipantEgressRequest(
                     room_name=room, identity=first.identity, file_outputs=files("cost-participant.mp4")))),
                ("track composite (one video + one audio track)", "track_composite_cpu_cost",
                 lambda: eg.egress.start_track_composite_egress(api.TrackCompositeEgressRequest(
                     room_name=room, video_track_id=video, audio_track_id=audio,
                     file_outputs=files("cost-track-composite.mp4")))),
                ("track egress, 640x360 VP8 video → WebM", "track_cpu_cost",
                 lambda: eg.egress.start_track_egress(api.TrackEgressRequest(
                     room_name=room, track_id=video, file=api.DirectFileOutput(filepath="cost-track.webm")))),
                ("track egress, Opus audio → OGG", "track_cpu_cost",
                 lambda: eg.egress.start_track_egress(api.TrackEgressRequest(
                     room_name=room, track_id=audio, file=api.DirectFileOutput(filepath="cost-track.ogg")))),
                ("web egress, video.html in Chromium", "web_cpu_cost",
                 lambda: eg.egress.start_web_egress(api.WebEgressRequest(url=page_url,
                                                                          file_outputs=files("cost-web.mp4")))),
                ("audio-only web egress, video.html in Chromium", "audio_web_cpu_cost",
                 lambda: eg.egress.start_web_egress(api.WebEgressRequest(url=page_url, audio_only=True,
                                                                          file_outputs=files("cost-web-audio.mp4")))),
            ]
            costs = []
            for name, key, start in kinds:
                info = await start()
                await wait_status(eg, [info.egress_id], lambda i: i.status == S.EGRESS_ACTIVE)
                proc = worker_of(server, info.egress_id)
                other = OtherLoad()
                other.start()
                t0, cpu0 = time.monotonic(), tree_cpu_s(proc)
                await asyncio.sleep(seconds)
                cores = (tree_cpu_s(proc) - cpu0) / (time.monotonic() - t0)
                other.stop()
                await stop_all(eg, [info.egress_id])
                costs.append(Cost(name, cores, key, other.cpus))
                print(f"{name}: {cores:.3f} cores (other processes {other.cpus:.2f})", flush=True)
            return costs
    finally:
        server.stop()
        pages.shutdown()


# ---- 2. start latency ---------------------------------------------------------------------------------------

@dataclass
class LatencyRun:
    pool: int
    samples: dict[int, list[float]] = field(default_factory=dict)  # group size -> start → ACTIVE, ms
    timeouts: int = 0
    other_cpus: float = 0.0
    idle_mib: tuple[float, float] = (0.0, 0.0)  # one idle pooled process: RSS, USS (MiB)


async def start_group(eg: api.LiveKitAPI, room: str, n: int, tag: str) -> tuple[list[float], list[str], int]:
    """Start ``n`` composites at once; (start → ACTIVE in ms of those that went active, their IDs, timeouts)."""
    async def start(i: int) -> tuple[str, float]:
        t = time.monotonic()
        info = await eg.egress.start_room_composite_egress(composite(room, f"{tag}-{i}"))
        return info.egress_id, t

    started = await asyncio.gather(*(start(i) for i in range(n)))
    ids = [egress_id for egress_id, _ in started]
    active = await wait_status(eg, ids, lambda i: i.status in (S.EGRESS_ACTIVE, *ENDED))
    latencies = [(active[e] - t) * 1000 for e, t in started if e in active]
    return latencies, ids, n - len(latencies)


async def measure_latency(workdir: Path, lk: LiveKitServer, room: str, pool: int, repeats: int) -> LatencyRun:
    # a budget that admits every start: this part times starts, part 3 admission
    server = serve(workdir / f"pool-{pool}", lk, PYEGRESS_HANDLER_POOL_SIZE=str(pool),
                   PYEGRESS_CPU_COST__ROOM_COMPOSITE_CPU_COST="0.01")
    run = LatencyRun(pool)
    other = OtherLoad()
    try:
        async with api.LiveKitAPI(server.url, lk.api_key, lk.api_secret) as eg:
            if pool:
                await wait_pool_idle(server, pool)
                mem = pooled(server)[0].memory_full_info()
                run.idle_mib = (mem.rss / 2**20, mem.uss / 2**20)
            other.start()
            for n in GROUPS:
                run.samples[n] = []
                for r in range(math.ceil(repeats / ((n + 1) // 2))):  # 5 repeats: 5, 3 and 2 groups
                    if pool:
                        await wait_pool_idle(server, pool)
                    else:
                        await asyncio.sleep(1.0)  # the previous group's workers have exited
                    latencies, ids, timeouts = await start_group(eg, room, n, f"p{pool}-n{n}-r{r}")
                    run.samples[n] += latencies
                    run.timeouts += timeouts
                    print(f"pool {pool}, {n} at once: " + ", ".join(f"{ms:.0f}" for ms in latencies) + " ms",
                          flush=True)
                    await stop_all(eg, ids)
            other.stop()
            run.other_cpus = other.cpus
    finally:
        server.stop()
    return run


# ---- 3. burst -----------------------------------------------------------------------------------------------

@dataclass
class Burst:
    starts: int
    admitted: int
    refused: int
    refusal_ms: list[float]
    admitted_active_ms: list[float]
    list_ms: list[float]
    other_cpus: float


async def measure_burst(workdir: Path, lk: LiveKitServer, room: str, count: int) -> Burst:
    server = serve(workdir / "burst", lk)
    other = OtherLoad()
    try:
        async with api.LiveKitAPI(server.url, lk.api_key, lk.api_secret) as eg, \
                api.LiveKitAPI(server.url, lk.api_key, lk.api_secret) as lister:
            await wait_pool_idle(server, Settings.model_fields["handler_pool_size"].default)
            list_ms: list[float] = []
            stop_listing = asyncio.Event()

            async def list_loop() -> None:
                while not stop_listing.is_set():
                    t = time.monotonic()
                    await lister.egress.list_egress(api.ListEgressRequest(room_name=room))
                    list_ms.append((time.monotonic() - t) * 1000)
                    await asyncio.sleep(POLL_S)

            async def start(i: int) -> tuple[str | None, float, float]:
                t = time.monotonic()
                try:
                    info = await eg.egress.start_room_composite_egress(composite(room, f"burst-{i}"))
                    return info.egress_id, t, time.monotonic()
                except api.TwirpError as e:
                    if e.code != "resource_exhausted":
                        raise
                    return None, t, time.monotonic()

            other.start()
            lister_task = asyncio.create_task(list_loop())
            results = await asyncio.gather(*(start(i) for i in range(count)))
            admitted = {e: t for e, t, _ in results if e}
            active = await wait_status(eg, list(admitted), lambda i: i.status in (S.EGRESS_ACTIVE, *ENDED))
            await asyncio.sleep(3)
            stop_listing.set()
            await lister_task
            other.stop()
            await stop_all(eg, list(admitted))
        return Burst(count, len(admitted), count - len(admitted),
                     [(t1 - t0) * 1000 for e, t0, t1 in results if not e],
                     [(active[e] - t) * 1000 for e, t in admitted.items() if e in active], list_ms, other.cpus)
    finally:
        server.stop()


# ---- report -------------------------------------------------------------------------------------------------

POOL_NOTE = (
    "Without a pool each start pays Python's imports (livekit rtc, PyAV, numpy, pydantic: about 0.7 CPU-s), "
    "and simultaneous starts pay them together. A pooled process has them done and only joins the room and "
    "opens its outputs. Starts beyond the pool's size get a new process, as without a pool (the refill waits "
    "until those have imported, so as not to slow them); so with a pool of 2 the third of 3 simultaneous "
    "starts takes as long as an unpooled one. 6 at once is beyond what the default budget admits on 2 cores "
    "(3 composites; this part lifts the budget to time the starts alone): the pooled starts stay quick, and the "
    "unpooled ones import while those already record, so they take longer than when all 6 start cold together.")

def section(command: str, costs: list[Cost], runs: list[LatencyRun], burst: Burst | None,
            load: tuple[float, float]) -> str:
    defaults = CPUCostConfig()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = [SECTION_START, "## Start latency, worker pool and admission", "", f"Command: `{command}`", "",
           f"Date: {now}. Code: {code_version()}. Machine: {machine()} ({machine_cores():g} cores for admission); "
           f"1-min load average {load[0]:.2f} before the run, {load[1]:.2f} after. **The machine was shared with "
           "other agents' builds and tests during the run, so every figure is noisy** (\"other CPUs\": what "
           "processes outside the benchmark used meanwhile, 0 on a quiet machine). livekit-server, `pyegress "
           "serve`, its workers and 2 generated publishers (640x360 30 fps) all run here; egresses record "
           "1280x720 30 fps H.264 + AAC to MP4 unless said otherwise.", ""]
    if costs:
        out += ["### CPU per egress type (defaults of `cpu_cost`)", "",
                "| egress | cores (worker tree, from ACTIVE) | `cpu_cost` key | default | other CPUs |",
                "|---|---:|---|---:|---:|"]
        out += [f"| {c.name} | {c.cores:.3f} | `{c.key}` | {getattr(defaults, c.key):g} | {c.other_cpus:.2f} |"
                for c in costs]
        out += [""]
    if runs:
        base = {n: statistics.median(s) for n, s in runs[0].samples.items() if s} if runs[0].pool == 0 else {}
        out += ["### StartRoomCompositeEgress → EGRESS_ACTIVE (ms)", "",
                "| pool size | at once | starts | p50 | p95 | max | p50 vs no pool | other CPUs |",
                "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for run in runs:
            for n, samples in run.samples.items():
                if not samples:
                    continue
                ratio = f"{statistics.median(samples) / base[n]:.2f}x" if base.get(n) else "-"
                out.append(f"| {run.pool} | {n} | {len(samples)} | {statistics.median(samples):.0f} | "
                           f"{percentile(samples, 95):.0f} | {max(samples):.0f} | {ratio} | {run.other_cpus:.2f} |")
        timeouts = sum(r.timeouts for r in runs)
        memory = next((r.idle_mib for r in runs if r.pool), None)
        out += ["", f"p95 is nearest-rank (of 5 samples it is the largest). Starts that never went active within "
                f"{ACTIVE_TIMEOUT_S:g} s: {timeouts}. Target: each of 3 simultaneous starts active within 1 s."
                + "".join(f" Pool {r.pool}, 3 at once: max {max(r.samples[3]):.0f} ms, "
                          f"{'met' if max(r.samples[3]) <= 1000 else 'NOT met'}." for r in runs if r.samples.get(3))
                + (f" An idle pooled process holds {memory[0]:.0f} MiB RSS, {memory[1]:.0f} MiB of it its own (USS)."
                   if memory else ""), "", POOL_NOTE, ""]
    if burst:
        out += [f"### Burst of {burst.starts} room composites at once, default budget and pool", "",
                "| measure | value |", "|---|---:|",
                f"| admitted | {burst.admitted} |",
                f"| refused (`resource_exhausted`, HTTP 429) | {burst.refused} |",
                f"| refusal answered in (max) | {max(burst.refusal_ms, default=0):.0f} ms |",
                f"| admitted: start → ACTIVE (max) | {max(burst.admitted_active_ms, default=0):.0f} ms |",
                f"| ListEgress calls during the burst | {len(burst.list_ms)} |",
                f"| ListEgress p50 / p99 / max | {percentile(burst.list_ms, 50):.1f} / "
                f"{percentile(burst.list_ms, 99):.1f} / {max(burst.list_ms):.1f} ms |",
                f"| other CPUs | {burst.other_cpus:.2f} |", "",
                f"Target: ListEgress p99 < 100 ms: {percentile(burst.list_ms, 99):.1f} ms, "
                f"{'met' if percentile(burst.list_ms, 99) < 100 else 'NOT met'}.", ""]
    out += [SECTION_END, ""]
    return "\n".join(out)


async def run(workdir: Path, pools: list[int], repeats: int, burst: int, cost_s: float
              ) -> tuple[list[Cost], list[LatencyRun], Burst | None]:
    lk = LiveKitServer(log_path=workdir / "livekit-server.log").start()
    publishers = None
    try:
        room = "bench-start"
        async with api.LiveKitAPI(lk.http_url, lk.api_key, lk.api_secret) as lkapi:
            await lkapi.room.create_room(api.CreateRoomRequest(name=room))
        publishers = start_publishers(lk, room, 2, workdir / "publishers.log")
        costs = await measure_costs(workdir, lk, room, cost_s) if cost_s > 0 else []
        runs = [await measure_latency(workdir, lk, room, pool, repeats) for pool in pools]
        result = await measure_burst(workdir, lk, room, burst) if burst else None
        return costs, runs, result
    finally:
        if publishers is not None:
            stop_process(publishers)
        lk.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pools", default="0,2,3", help="pool sizes to compare, comma-separated (0: no pool)")
    p.add_argument("--repeats", type=int, default=5, help="groups of one start; 3 and 6 at once get fewer")
    p.add_argument("--burst", type=int, default=20, help="starts in the burst (0 skips it)")
    p.add_argument("--cost-seconds", type=float, default=15.0, help="s measured per egress type (0 skips)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "RESULTS.md")
    args = p.parse_args()
    warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)  # the dev key pair's 6-byte secret
    load0 = psutil.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="pyegress-bench-") as tmp:
        costs, runs, burst = asyncio.run(run(Path(tmp), [int(x) for x in args.pools.split(",") if x], args.repeats,
                                             args.burst, args.cost_seconds))
    text = section(command_line(), costs, runs, burst, (load0, psutil.getloadavg()[0]))
    print(text)
    update_results(args.out, text, SECTION_START, SECTION_END)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
