"""Live preview of a running room composite through ``GET /egress/{id}/preview.jpg`` and ``.mjpeg``."""

from __future__ import annotations

import asyncio
import io
import time

import httpx
import numpy as np
from livekit import api
from PIL import Image

from conftest import wait_status
from pyegress.devtools.patterns import participant_colour
from pyegress.media.compose.layout import grid_rects

S = api.EgressStatus
ENDED = (S.EGRESS_COMPLETE, S.EGRESS_FAILED, S.EGRESS_ABORTED, S.EGRESS_LIMIT_REACHED)


def token(livekit, room: str = "", record: bool = True) -> dict[str, str]:
    grants = api.VideoGrants(room_record=record, room=room)
    jwt = api.AccessToken(livekit.api_key, livekit.api_secret).with_identity("viewer").with_grants(grants).to_jwt()
    return {"Authorization": f"Bearer {jwt}"}


def full_range_chroma(index: int) -> tuple[float, float]:
    """Participant ``index``'s (Cb, Cr) as a JPEG holds it (full range), from its limited-range colour."""
    _, u, v = participant_colour(index)
    return 128 + (u - 128) * 255 / 224, 128 + (v - 128) * 255 / 224


def tile_colours(jpeg: bytes, n: int) -> list[tuple[float, float]]:
    """Median (Cb, Cr) of the centre of each of ``n`` grid tiles of a JPEG."""
    image = Image.open(io.BytesIO(jpeg))
    ycc = np.asarray(image.convert("YCbCr"), dtype=np.float64)
    out = []
    for r in grid_rects(n, image.width, image.height):
        cx, cy, qw, qh = r.x + r.w // 2, r.y + r.h // 2, r.w // 5, r.h // 5
        centre = ycc[cy - qh: cy + qh, cx - qw: cx + qw]
        out.append((float(np.median(centre[..., 1])), float(np.median(centre[..., 2]))))
    return out


async def parts(response: httpx.Response, boundary: str):
    """The bodies of a ``multipart/x-mixed-replace`` stream as they arrive; ends at the closing boundary."""
    buf = b""
    stream = response.aiter_bytes()
    while True:
        head_end = buf.find(b"\r\n\r\n")
        if head_end < 0:
            if buf.startswith(f"--{boundary}--".encode()):
                return
            buf += await anext(stream)
            continue
        head = buf[:head_end].decode()
        assert head.startswith(f"--{boundary}\r\n"), head
        fields = dict(line.split(": ", 1) for line in head.split("\r\n")[1:])
        assert fields["Content-Type"] == "image/jpeg"
        size = int(fields["Content-Length"])
        while len(buf) < head_end + 4 + size + 2:
            buf += await anext(stream)
        yield buf[head_end + 4: head_end + 4 + size]
        assert buf[head_end + 4 + size: head_end + 6 + size] == b"\r\n"
        buf = buf[head_end + 6 + size:]


async def test_preview_of_room_composite(lkapi, egress_api, publishers, room_name, egress_server, livekit):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 2)
    info = await egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
        room_name=room_name, layout="grid", file_outputs=[api.EncodedFileOutput(filepath="{room_name}/preview.mp4")]))
    await wait_status(egress_api, info.egress_id, lambda i: i.status == S.EGRESS_ACTIVE)
    await asyncio.sleep(2)  # both publishers' pictures are in the composite
    url = f"{egress_server.url}/egress/{info.egress_id}/preview"
    preview_file = egress_server.workdir / "var" / "previews" / f"{info.egress_id}.jpg"
    assert not preview_file.exists()  # nobody watched yet: the handler wrote nothing

    async with httpx.AsyncClient(timeout=10) as http:
        # who may look: the Egress API's rule
        r = await http.get(url + ".jpg")
        assert r.status_code == 401 and "error" in r.json()
        assert (await http.get(url + ".jpg", headers=token(livekit, record=False))).status_code == 403
        r = await http.get(url + ".jpg", headers=token(livekit, room="another-room"))
        assert r.status_code == 403 and r.json()["field"] == "egress_id"
        for bad in ("EG_doesnotexist", "x" * 300, "%00", "EG_%C3%A9", "..%2F..%2Fetc"):
            r = await http.get(f"{egress_server.url}/egress/{bad}/preview.jpg", headers=token(livekit))
            assert r.status_code == 404, (bad, r.status_code, r.text)

        t0 = time.monotonic()
        r = await http.get(url + ".jpg", headers=token(livekit, room=room_name))
        first_s = time.monotonic() - t0
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "image/jpeg"
        image = Image.open(io.BytesIO(r.content))
        assert image.format == "JPEG" and image.size == (1280, 720)
        # the composite: each tile shows a publisher's colour, and both publishers are shown
        colours = tile_colours(r.content, 2)
        wanted = [full_range_chroma(i) for i in range(2)]
        matched = [min(range(2), key=lambda i: np.hypot(c[0] - wanted[i][0], c[1] - wanted[i][1])) for c in colours]
        assert sorted(matched) == [0, 1], (colours, wanted)
        for c, i in zip(colours, matched):
            assert np.hypot(c[0] - wanted[i][0], c[1] - wanted[i][1]) < 10, (colours, wanted)
        assert first_s < 3, first_s
        print(f"\npreview.jpg: {len(r.content)} bytes in {first_s:.2f} s")
        assert preview_file.exists()

        # the stream: a new JPEG about once a second, until the egress ends
        async with http.stream("GET", url + ".mjpeg", headers=token(livekit)) as r:
            assert r.status_code == 200
            ctype, _, boundary = r.headers["content-type"].partition("; boundary=")
            assert ctype == "multipart/x-mixed-replace" and boundary
            received, times = [], []
            async for jpeg in parts(r, boundary):
                received.append(jpeg)
                times.append(time.monotonic())
                if len(received) == 3:
                    break
            for jpeg in received:
                assert Image.open(io.BytesIO(jpeg)).size == (1280, 720)
            gaps = np.diff(times)
            assert all(0.5 < g < 2.0 for g in gaps[1:]), gaps  # the first may be the file already there

        await egress_api.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
        final, _ = await wait_status(egress_api, info.egress_id, lambda i: i.status in ENDED)
        assert final.status == S.EGRESS_COMPLETE, final.error
        r = await http.get(url + ".jpg", headers=token(livekit))
        assert r.status_code == 404 and r.json()["field"] == "egress_id"
        assert (await http.get(url + ".mjpeg", headers=token(livekit))).status_code == 404
    deadline = time.monotonic() + 10
    while preview_file.exists() and time.monotonic() < deadline:  # removed when the handler closes its outputs
        await asyncio.sleep(0.1)
    assert not preview_file.exists()


async def test_mjpeg_ends_with_the_egress(lkapi, egress_api, publishers, room_name, egress_server, livekit):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1)
    info = await egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
        room_name=room_name, file_outputs=[api.EncodedFileOutput(filepath="{room_name}/end.mp4")]))
    await wait_status(egress_api, info.egress_id, lambda i: i.status == S.EGRESS_ACTIVE)
    url = f"{egress_server.url}/egress/{info.egress_id}/preview.mjpeg"
    async with httpx.AsyncClient(timeout=15) as http, http.stream("GET", url, headers=token(livekit)) as r:
        boundary = r.headers["content-type"].partition("; boundary=")[2]
        count = 0
        async for _ in parts(r, boundary):
            count += 1
            if count == 1:
                await egress_api.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
        # the loop ended at the closing boundary, not by a timeout
    assert count >= 1
