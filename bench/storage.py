"""Benchmark: upload throughput to S3-compatible storage, and how long a stop waits for the upload.

Not a test. Against a local SeaweedFS (``weed mini``, loopback) it measures

1. throughput (MB/s, 10^6 bytes) of pyegress's upload (``S3Storage.upload``: obstore multipart PUTs
   through SeaweedFS's S3 gateway) of a ``--size-mb`` file of random bytes, against SeaweedFS's own
   client writing the same file into the same bucket (``weed filer.copy`` to the filer, 4 MiB
   chunks); the median of ``--repeats`` runs each, alternating, and their ratio;
2. stop latency (ms): StopEgress until ListEgress shows EGRESS_COMPLETE (polled every 20 ms) of a
   ``--seconds`` room composite (1 generated publisher, 1280x720 30 fps H.264 3000 kbps, AAC) whose
   MP4 goes to that S3 bucket, once streamed while recording (``PYEGRESS_STREAM_UPLOADS=true``) and
   once uploaded at the end (``false``). The two egresses record the same room at the same time from
   two ``pyegress serve`` processes; the streaming one is stopped first, then the other, so their
   uploads do not compete. Each object is checked (size equal to the reported one, ffprobe duration).

Usage::

    .venv/bin/python bench/storage.py [--seconds 600] [--size-mb 200] [--repeats 3] [--out bench/RESULTS.md]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import obstore
from jwt.warnings import InsecureKeyLengthWarning
from livekit import api

from harness import command_line, create_room, machine, start_publishers, stop_process, update_results, wait_for
from pyegress.devtools.livekit_server import LiveKitServer
from pyegress.devtools.probe import ffprobe
from pyegress.devtools.pyegress_server import PyegressServer
from support.s3_server import S3Server
from pyegress.storage import S3Storage

SECTION_START = "<!-- bench/storage.py: start -->"
SECTION_END = "<!-- bench/storage.py: end -->"
S = api.EgressStatus


def throughput(s3: S3Server, workdir: Path, size_mb: int, repeats: int) -> tuple[list[float], list[float]]:
    """MB/s of ``repeats`` uploads of one random file: (pyegress, weed filer.copy)."""
    path = workdir / "payload.bin"
    with open(path, "wb") as f:
        for _ in range(size_mb):
            f.write(os.urandom(1_000_000))
    target = S3Storage(bucket="recordings", endpoint=s3.endpoint, force_path_style=True, access_key="bench",
                      secret="bench")
    weed = str(Path(sys.executable).parent / "weed")
    filer = f"http://127.0.0.1:{s3.ports['filer.port']}.{s3.ports['filer.port.grpc']}"
    ours, theirs = [], []
    for i in range(repeats):
        t = time.perf_counter()
        target.upload(path, f"pyegress/{i}.bin", attempts=1)
        ours.append(size_mb / (time.perf_counter() - t))
        t = time.perf_counter()
        subprocess.run([weed, "filer.copy", str(path), f"{filer}/buckets/recordings/weed{i}/"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        theirs.append(size_mb / (time.perf_counter() - t))
        for key in (f"pyegress/{i}.bin", f"weed{i}/payload.bin"):
            assert obstore.head(target.store(), key)["size"] == size_mb * 1_000_000, key
    return ours, theirs


async def stop_latencies(lk: LiveKitServer, s3: S3Server, workdir: Path, seconds: float) -> dict[str, dict]:
    """Record one room from two pyegress servers (streamed / at-end upload); stop each, time the stop."""
    room = "bench-storage"
    await create_room(lk, room)
    publishers = start_publishers(lk, room, 1, workdir / "publishers.log")
    servers = {mode: PyegressServer(workdir / mode, lk.url, lk.api_key, lk.api_secret, extra_env={
        "PYEGRESS_STREAM_UPLOADS": "true" if mode == "streamed" else "false", "PYEGRESS_EMPTY_TIMEOUT_S": "30"})
        for mode in ("streamed", "at end")}
    results: dict[str, dict] = {}
    try:
        for server in servers.values():
            server.start()
        clients = {mode: api.LiveKitAPI(server.url, lk.api_key, lk.api_secret) for mode, server in servers.items()}
        upload = api.S3Upload(bucket="recordings", endpoint=s3.endpoint, force_path_style=True, region="us-east-1",
                              access_key="bench", secret="bench")
        ids = {}
        for mode, client in clients.items():
            info = await client.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
                room_name=room, file_outputs=[api.EncodedFileOutput(
                    filepath=f"stop/{mode.replace(' ', '-')}.mp4", s3=upload)]))
            ids[mode] = info.egress_id
        for mode, client in clients.items():
            await wait_for(client, ids[mode], S.EGRESS_ACTIVE, 60)
        await asyncio.sleep(seconds)
        for mode, client in clients.items():
            t = time.perf_counter()
            await client.egress.stop_egress(api.StopEgressRequest(egress_id=ids[mode]))
            info = await wait_for(client, ids[mode], S.EGRESS_COMPLETE, 600)
            latency_ms = (time.perf_counter() - t) * 1000
            (result,) = info.file_results
            key = f"stop/{mode.replace(' ', '-')}.mp4"
            head = obstore.head(S3Storage(bucket="recordings", endpoint=s3.endpoint, force_path_style=True,
                                         access_key="bench", secret="bench").store(), key)
            assert head["size"] == result.size and not info.backup_storage_used, (mode, head, result)
            results[mode] = {"latency_ms": latency_ms, "size_mb": result.size / 1e6,
                             "duration_s": ffprobe(result.location).duration, "location": result.location}
        for client in clients.values():
            await client.aclose()
    finally:
        for server in servers.values():
            server.stop()
        stop_process(publishers)
    return results


def section(command: str, ours: list[float], theirs: list[float], size_mb: int, stops: dict[str, dict],
            seconds: float) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    o, w = statistics.median(ours), statistics.median(theirs)
    rows = "\n".join(f"| {mode} | {r['duration_s']:.1f} | {r['size_mb']:.1f} | {r['latency_ms']:.0f} |"
                     for mode, r in stops.items())
    return f"""{SECTION_START}
## Uploads to S3-compatible storage (SeaweedFS on loopback)

Command: `{command}`

Date: {now}. Machine: {machine()}; SeaweedFS `weed mini` on the same machine.

Throughput of a {size_mb} MB file of random bytes (MB/s, median of {len(ours)}; each run:
{', '.join(f'{x:.0f}' for x in ours)} vs {', '.join(f'{x:.0f}' for x in theirs)}):

| client | MB/s | ratio to weed |
|---|---:|---:|
| pyegress `S3Storage.upload` (obstore, S3 multipart) | {o:.0f} | {o / w:.2f} |
| `weed filer.copy` (SeaweedFS's own client, to the filer) | {w:.0f} | 1.00 |

Stop → EGRESS_COMPLETE of a {seconds:.0f} s room composite (1280x720 30 fps, 3000 kbps) whose MP4 goes to
the bucket (both egresses record the same room at once; stopped one after the other):

| MP4 upload | recorded s (ffprobe) | object MB | stop → COMPLETE ms |
|---|---:|---:|---:|
{rows}

"streamed" sends the fragmented MP4 as a multipart upload while it records (10 MiB parts) and at
the stop only the rest, then checks the object (size, CRC-32 of what was sent against the file);
"at end" uploads the whole file after the stop.
{SECTION_END}
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=600.0, help="recording length, s (default 600)")
    p.add_argument("--size-mb", type=int, default=200, help="throughput file size, MB (default 200)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "RESULTS.md")
    args = p.parse_args()
    warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)  # the dev key pair's 6-byte secret
    with tempfile.TemporaryDirectory(prefix="pyegress-bench-storage-") as tmp:
        work = Path(tmp)
        with S3Server(work / "s3") as s3, LiveKitServer(log_path=work / "livekit-server.log") as lk:
            # the recordings first: SeaweedFS stays busy for a while after the large throughput uploads
            stops = asyncio.run(stop_latencies(lk, s3, work, args.seconds))
            ours, theirs = throughput(s3, work, args.size_mb, args.repeats)
    text = section(command_line(), ours, theirs, args.size_mb, stops, args.seconds)
    print(text)
    update_results(args.out, text, SECTION_START, SECTION_END)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
