"""Benchmark: what watching the live preview costs (``GET /egress/{egress_id}/preview.mjpeg``).

Not a test. A real livekit-server, 2 generated publishers (640x360 30 fps, one process) and a real
``pyegress serve``; one room composite (1280x720 H.264 file) measured twice in the same run: ``--seconds``
unwatched (the baseline), then ``--seconds`` with the MJPEG stream read by an HTTP client. CPU is user + system
of the egress's handler process and its children (the packet receiver), and of the ``pyegress serve`` process itself
(it relays the JPEGs), in cores; the ratio is watched / unwatched.

Usage::

    .venv/bin/python bench/preview.py [--seconds 20] [--out bench/RESULTS.md]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import sys
import tempfile
import time
import warnings
from pathlib import Path

import httpx
import psutil
from jwt.warnings import InsecureKeyLengthWarning
from livekit import api

from harness import (OtherLoad, code_version, command_line, cpu_s, create_room, machine, start_publishers,
                     stop_process, tree_cpu_s, update_results, wait_for)
from pyegress.devtools.livekit_server import LiveKitServer
from pyegress.devtools.pyegress_server import PyegressServer

SECTION_START, SECTION_END = "<!-- bench/preview.py: start -->", "<!-- bench/preview.py: end -->"
S = api.EgressStatus


def _handler(server: PyegressServer, egress_id: str) -> psutil.Process:
    for child in psutil.Process(server.pid).children():
        if egress_id in child.cmdline():
            return child
    raise RuntimeError(f"no handler process for {egress_id}")


async def _watch(url: str, headers: dict[str, str], seconds: float) -> int:
    """Read the MJPEG stream for ``seconds``; returns the JPEGs received."""
    jpegs = 0
    async with httpx.AsyncClient(timeout=15) as http, http.stream("GET", url, headers=headers) as r:
        r.raise_for_status()
        t0 = time.monotonic()
        async for chunk in r.aiter_bytes():
            jpegs += chunk.count(b"Content-Type: image/jpeg")
            if time.monotonic() - t0 >= seconds:
                break
    return jpegs


async def measure(seconds: float, workdir: Path) -> dict[str, float]:
    """CPU (cores) of the handler tree and the service, unwatched then watched, and the JPEGs per second.

    Raises:
        RuntimeError: a server or the egress did not start.
    """
    with LiveKitServer(log_path=workdir / "livekit.log") as lk:
        await create_room(lk, "preview")
        pubs = start_publishers(lk, "preview", 2, workdir / "publishers.log")
        try:
            with PyegressServer(workdir / "srv", lk.url, lk.api_key, lk.api_secret) as server:
                async with api.LiveKitAPI(server.url, lk.api_key, lk.api_secret) as eg:
                    info = await eg.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
                        room_name="preview", file_outputs=[api.EncodedFileOutput(filepath="preview.mp4")]))
                    await wait_for(eg, info.egress_id, S.EGRESS_ACTIVE, 60)
                    await asyncio.sleep(3)
                    handler, service = _handler(server, info.egress_id), psutil.Process(server.pid)
                    jwt = (api.AccessToken(lk.api_key, lk.api_secret).with_identity("bench")
                           .with_grants(api.VideoGrants(room_record=True)).to_jwt())
                    out: dict[str, float] = {}
                    other = OtherLoad()
                    other.start()
                    for phase in ("unwatched", "watched"):
                        h0, s0, t0 = tree_cpu_s(handler), cpu_s(service), time.monotonic()
                        if phase == "watched":
                            jpegs = await _watch(f"{server.url}/egress/{info.egress_id}/preview.mjpeg",
                                                 {"Authorization": f"Bearer {jwt}"}, seconds)
                        else:
                            await asyncio.sleep(seconds)
                        dt = time.monotonic() - t0
                        out[f"handler_{phase}"] = (tree_cpu_s(handler) - h0) / dt
                        out[f"service_{phase}"] = (cpu_s(service) - s0) / dt
                    out["jpegs_per_s"] = jpegs / seconds
                    other.stop()
                    out["other_cpus"] = other.cpus
                    await eg.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
                    await wait_for(eg, info.egress_id, S.EGRESS_COMPLETE, 60)
        finally:
            stop_process(pubs)
    return out


def section(r: dict[str, float], seconds: float) -> str:
    added = r["handler_watched"] - r["handler_unwatched"] + r["service_watched"] - r["service_unwatched"]
    base = r["handler_unwatched"] + r["service_unwatched"]
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""{SECTION_START}
## Live preview: what watching it costs

Command: `{command_line()}`

Date: {now}. Code: {code_version()}. Machine: {machine()}. One room composite of 2 generated publishers
(640x360 30 fps VP8) to a 1280x720 H.264 file, {seconds:.0f} s unwatched (the baseline), then {seconds:.0f} s with
`/egress/{{egress_id}}/preview.mjpeg` read by an HTTP client; CPU of the handler tree and of `pyegress serve`.

| | unwatched (cores) | watched (cores) |
|---|---:|---:|
| handler tree | {r["handler_unwatched"]:.3f} | {r["handler_watched"]:.3f} |
| pyegress serve | {r["service_unwatched"]:.3f} | {r["service_watched"]:.3f} |

Watching costs {added:+.3f} core ({(base + added) / base:.3f}x the unwatched egress), {r["jpegs_per_s"]:.2f} JPEGs/s
received. Goal (issue 15): a few percent of a core at most: {"met" if added <= 0.05 else "NOT met"}. Other processes
used {r["other_cpus"]:.2f} CPUs meanwhile (0 on a quiet machine).
{SECTION_END}
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=20.0, help="seconds per phase (default 20)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "RESULTS.md")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)
    with tempfile.TemporaryDirectory(prefix="bench-preview-") as tmp:
        result = asyncio.run(measure(args.seconds, Path(tmp)))
    text = section(result, args.seconds)
    print(text)
    update_results(args.out, text, SECTION_START, SECTION_END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
