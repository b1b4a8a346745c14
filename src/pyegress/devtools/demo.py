"""The main job: a real recording of a real LiveKit room through pyegress's Egress API.

Starts livekit-server (dev mode, loopback), ``pyegress serve``, and N generated
publishers with names (the first shares a slide, the second has its camera off, a fourth joins
by phone: audio only); records a room composite for a few seconds with ``livekit-api``'s
own EgressService client; while it records, saves one live preview (``GET /egress/{id}/preview.jpg``)
and prints its URL; stops it; prints where the MP4 is and what ffprobe says.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import warnings
from pathlib import Path

import httpx
import jwt.warnings

from livekit import api
from rich.console import Console

from .livekit_server import LiveKitServer
from .probe import ffprobe
from .pyegress_server import PyegressServer
from .scenes import NAMES

console = Console(soft_wrap=True)
# livekit-server --dev uses the 6-byte secret "secret", which PyJWT warns about on every token.
warnings.filterwarnings("ignore", category=jwt.warnings.InsecureKeyLengthWarning)


def cast(count: int) -> dict[str, str]:
    """The demo's publisher options for ``count`` participants (``pyegress.devtools.publisher`` flags):
    display names, a screen share by the first, a camera turned off by the second (of 3 or more) and
    an audio-only guest as the fourth (of 4 or more)."""
    options = {"names": ",".join(NAMES[i % len(NAMES)] for i in range(count)), "share": "0"}
    if count >= 3:
        options["camera-off"] = "1"
    if count >= 4:
        options["audio-only"] = "3"
    return options


def start_publishers(server: LiveKitServer, room: str, count: int, log_path: Path) -> subprocess.Popen:
    """Start ``count`` generated publishers (:func:`cast`) in a separate process and wait until they publish.

    Raises:
        RuntimeError: the publisher process exits before it is ready.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyegress.devtools.publisher", "--url", server.url, "--api-key", server.api_key,
         "--api-secret", server.api_secret, "--room", room, "--count", str(count),
         *(arg for flag, value in cast(count).items() for arg in (f"--{flag}", value))],
        stdout=subprocess.PIPE, stderr=open(log_path, "ab"), text=True)
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        raise RuntimeError(f"publishers failed to start; see {log_path}")
    return proc


async def _save_preview(egress_url: str, key: str, secret: str, egress_id: str, path: Path) -> None:
    """Fetch the live preview of the running egress into ``path`` and print its URLs."""
    url = f"{egress_url}/egress/{egress_id}/preview"
    token = api.AccessToken(key, secret).with_grants(api.VideoGrants(room_record=True)).to_jwt()
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.get(url + ".jpg", headers={"Authorization": f"Bearer {token}"})
    if r.status_code != 200:
        console.print(f"[yellow]preview: {r.status_code} {r.text}[/]")
        return
    path.write_bytes(r.content)
    console.print(f"live preview {url}.jpg (or .mjpeg), with a roomRecord token: saved to [bold]{path}[/]")


async def _record(lk_url: str, egress_url: str, key: str, secret: str, room: str, seconds: float,
                  preview_path: Path) -> api.EgressInfo:
    async with api.LiveKitAPI(lk_url, key, secret) as lk, api.LiveKitAPI(egress_url, key, secret) as eg:
        await lk.room.create_room(api.CreateRoomRequest(name=room))
        info = await eg.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
            room_name=room, layout="grid",
            file_outputs=[api.EncodedFileOutput(filepath="{room_name}-{time}.mp4")]))
        console.print(f"egress [bold]{info.egress_id}[/] {api.EgressStatus.Name(info.status)}")
        while info.status == api.EgressStatus.EGRESS_STARTING:
            await asyncio.sleep(0.1)
            info = (await eg.egress.list_egress(api.ListEgressRequest(egress_id=info.egress_id))).items[0]
        console.print(f"egress {api.EgressStatus.Name(info.status)}; recording {seconds:.0f} s")
        started = time.monotonic()
        if info.status == api.EgressStatus.EGRESS_ACTIVE:
            await asyncio.sleep(min(2.0, seconds / 2))  # the publishers' pictures are composed by then
            await _save_preview(egress_url, key, secret, info.egress_id, preview_path)
        await asyncio.sleep(max(0.0, seconds - (time.monotonic() - started)))
        await eg.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            info = (await eg.egress.list_egress(api.ListEgressRequest(egress_id=info.egress_id))).items[0]
            if info.status not in (api.EgressStatus.EGRESS_ACTIVE, api.EgressStatus.EGRESS_ENDING):
                break
            await asyncio.sleep(0.2)
        return info


def run_demo(seconds: float, publishers: int, workdir: str) -> int:
    """Run the demo; returns the process exit code (0 when a playable recording was made)."""
    work = Path(workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    room = f"demo-{int(time.time())}"
    console.print("[bold]starting livekit-server[/] (built from its Go module on first use)")
    with LiveKitServer(log_path=work / "livekit-server.log") as lk:
        with PyegressServer(work, lk.url, lk.api_key, lk.api_secret) as egress:
            console.print(f"livekit-server {lk.url}, pyegress {egress.url}")
            pubs = start_publishers(lk, room, publishers, work / "publishers.log")
            try:
                console.print(f"{publishers} generated publishers in room [bold]{room}[/]: "
                              + ", ".join(f"{k} {v}" for k, v in cast(publishers).items()))
                info = asyncio.run(_record(lk.http_url, egress.url, lk.api_key, lk.api_secret, room, seconds,
                                           work / "preview.jpg"))
            finally:
                pubs.terminate()
                pubs.wait(10)
    status = api.EgressStatus.Name(info.status)
    if info.status != api.EgressStatus.EGRESS_COMPLETE or not info.file_results:
        console.print(f"[red]egress ended {status}: {info.error}[/]")
        return 1
    result = info.file_results[0]
    console.print(f"egress {status}: [bold]{result.location}[/] ({result.size} bytes, "
                  f"{result.duration / 1e9:.2f} s)")
    console.print(f"ffprobe: {ffprobe(result.location).summary()}")
    return 0
