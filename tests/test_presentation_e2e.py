"""Room composite presentation in a real recording: name labels, placeholders and a screen share on the stage.

Real livekit-server, generated publishers with display names, a muted camera, an audio-only guest and a
screen share, recorded by pyegress and decoded from the file. The expected tiles are drawn by the same
compositor offline (:class:`pyegress.devtools.scenes.Room`) and compared region by region.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
from livekit import api

from conftest import wait_status
from media_checks import frame_at
from pyegress.devtools.patterns import slide
from pyegress.devtools.publisher import SHARE_PUBLISHED_SIZE
from pyegress.devtools.scenes import Room
from pyegress.media.compose.labels import name_label
from pyegress.media.compose.layout import Rect

S = api.EgressStatus
ENDED = (S.EGRESS_COMPLETE, S.EGRESS_FAILED, S.EGRESS_ABORTED, S.EGRESS_LIMIT_REACHED)
NAMES = ("Ada Lovelace", "Борис Пастернак", "李娜")


async def record(egress_api, lkapi, room_name: str, seconds: float, layout: str = "grid") -> Path:
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    info = await egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
        room_name=room_name, layout=layout, file_outputs=[api.EncodedFileOutput(filepath=f"{room_name}.mp4")]))
    active, _ = await wait_status(egress_api, info.egress_id, lambda i: i.status in (S.EGRESS_ACTIVE, *ENDED))
    assert active.status == S.EGRESS_ACTIVE, active.error
    await asyncio.sleep(seconds)
    await egress_api.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
    final, _ = await wait_status(egress_api, info.egress_id, lambda i: i.status in ENDED)
    assert final.status == S.EGRESS_COMPLETE, final.error
    return Path(final.file_results[0].location)


def y_region(yuv: np.ndarray, r: Rect, inset: int = 0) -> np.ndarray:
    return yuv[r.y + inset: r.y + r.h - inset, r.x + inset: r.x + r.w - inset].astype(np.float64)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255 ** 2 / mse)


def label_rect(box: Rect, name: str, muted: bool, scale: float) -> tuple[Rect, np.ndarray]:
    """Where the compositor puts ``name``'s label in ``box``, and its luma over a flat grey background."""
    inset = int(4 * scale)
    label = name_label(name, muted, scale, box.w - 2 * inset)
    w, h = label.width, label.height
    y, u, v = np.full((h, w), 110, np.uint8), np.full(((h + 1) // 2, (w + 1) // 2), 128, np.uint8), \
        np.full(((h + 1) // 2, (w + 1) // 2), 128, np.uint8)
    label.blend_into(y, u, v, 0, 0)
    return Rect(box.x + inset, box.y + box.h - inset - h, w, h), y.astype(np.float64)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


async def test_names_muted_camera_and_audio_only_guest_are_drawn(lkapi, egress_api, publishers, room_name):
    publishers(room_name, 3, names=",".join(NAMES), camera_off="1", mic_off="1,2", audio_only="2")
    path = await record(egress_api, lkapi, room_name, 6)
    frames = [frame_at(path, t) for t in (3.0, 4.0, 5.0)]
    height, width = frames[0].shape[0] * 2 // 3, frames[0].shape[1]
    scale = max(1.0, height / 720)

    # the same room drawn offline: its tiles and their boxes (the live order may differ: match by content)
    room = Room(width, height, "grid")
    room.camera(NAMES[0])
    room.camera(NAMES[1], muted=True, mic_muted=True)
    room.audio_only(NAMES[2], mic_muted=True)
    expected = room.comp.compose()[0].to_ndarray()
    arrangement = room.comp.arrangement()
    boxes = [box for _, box in arrangement]
    assert len(boxes) == 3 and all(b is not None for b in boxes), "every participant has a tile"

    ring = int(4 * scale)  # a speaking tile's ring may be drawn live: compared inside it
    for tile, box in arrangement:
        if tile.kind == "camera" and not tile.video_muted:
            continue
        # the muted camera's placeholder and the guest's initials tile, each with its label and muted mark
        want = y_region(expected, box, ring)
        for yuv in frames:
            best = max(psnr(want, y_region(yuv, live, ring)) for live in boxes)
            assert best >= 30, (tile.name, best)
    # the placeholders differ from each other, so the match above is not any placeholder anywhere
    muted_box, guest_box = (box for tile, box in arrangement if tile.kind == "audio" or tile.video_muted)
    assert psnr(y_region(expected, muted_box, ring), y_region(expected, guest_box, ring)) < 25

    # each name on its label box (with the muted-microphone mark for the muted ones), correlated with the
    # label drawn on its own: present in some tile of the recording
    for name, muted in zip(NAMES, (False, True, True)):
        scores = []
        for live in boxes:
            rect, want = label_rect(live, name, muted, scale)
            scores.append(max(correlation(y_region(yuv, rect), want) for yuv in frames))
        assert max(scores) >= 0.8, (name, scores)
    # and the same measure finds no label where there is none (in a tile's right half)
    live = boxes[int(np.argmax(scores))]
    rect, want = label_rect(live, NAMES[2], True, scale)
    elsewhere = Rect(live.x + live.w - rect.w - ring, live.y + live.h // 3, rect.w, rect.h)
    assert max(correlation(y_region(yuv, elsewhere), want) for yuv in frames) < 0.5


async def test_screen_share_takes_the_stage_letterboxed(lkapi, egress_api, publishers, room_name):
    publishers(room_name, 2, names=",".join(NAMES[:2]), share="0")
    # a late frame: on a loaded machine the share's first keyframe can take a few seconds to come
    path = await record(egress_api, lkapi, room_name, 8)
    yuv = frame_at(path, 6.5)
    height, width = yuv.shape[0] * 2 // 3, yuv.shape[1]

    room = Room(width, height, "grid")
    room.camera(NAMES[0])
    room.camera(NAMES[1])
    room.share("p0", slide(*SHARE_PUBLISHED_SIZE))
    expected = room.comp.compose()[0].to_ndarray()
    (stage,) = [box for tile, box in room.comp.arrangement() if tile.kind == "share"]
    # the grid turned into the speaker layout: the share fills the stage, the cameras are in the carousel
    assert stage.w > width // 2 and stage.h > height // 2
    assert psnr(y_region(expected, stage), y_region(yuv, stage)) >= 28
