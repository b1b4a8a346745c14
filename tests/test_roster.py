"""Unit tests of a room composite's participant tiles: LiveKit's order, tiles kept in place, placeholders,
name labels, the speaking ring and the speaker layout's stage (no network)."""

import numpy as np
import pytest
from livekit.protocol import models

from pyegress.contract.layouts import Layout
from pyegress.media.compose.layout import Rect
from pyegress.media.compose.roster import Roster, update_pages
from pyegress.media.compose.video import RING_RGB, STAGE_HOLD_S, VideoCompositor
from pyegress.media.compose.labels import rgb_to_i420

pytestmark = pytest.mark.unit

CAMERA, MIC, SHARE = models.TrackSource.CAMERA, models.TrackSource.MICROPHONE, models.TrackSource.SCREEN_SHARE


def solid_i420(w: int, h: int, y: int, u: int = 128, v: int = 128) -> bytes:
    return bytes([y]) * (w * h) + bytes([u]) * (w * h // 4) + bytes([v]) * (w * h // 4)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def people(roster: Roster, *identities: str, camera: bool = True) -> None:
    for identity in identities:
        if camera:
            roster.add_track(f"TR_V_{identity}", identity, f"{identity.title()} Example", "video", CAMERA)
        roster.add_track(f"TR_A_{identity}", identity, f"{identity.title()} Example", "audio", MIC)


def keys(roster: Roster, now: float = 0.0) -> list[str]:
    return [t.identity if t.kind != "share" else f"share:{t.identity}" for t in roster.tiles(now)]


def test_livekits_order_shares_then_speakers_then_last_spoken_then_cameras_on():
    roster = Roster()
    people(roster, "a", "b", "c", "d")
    assert keys(roster) == ["a", "b", "c", "d"]  # nobody spoke: the order they came
    roster.set_muted("TR_V_a", True)
    assert keys(roster) == ["b", "c", "d", "a"]  # cameras on before cameras off
    roster.set_speakers(["c"], now=1.0)
    assert keys(roster, 1.0) == ["c", "b", "d", "a"]
    roster.set_speakers(["d", "c"], now=2.0)  # both speak: the louder first
    assert keys(roster, 2.0) == ["d", "c", "b", "a"]
    roster.set_speakers([], now=3.0)  # nobody speaks: who started speaking last first
    assert keys(roster, 3.0) == ["d", "c", "b", "a"]
    roster.add_track("TR_S_b", "b", "B", "video", SHARE)
    assert keys(roster, 3.0)[0] == "share:b"


def test_a_participant_with_only_sound_has_a_tile_and_one_with_only_a_share_has_only_that():
    roster = Roster()
    people(roster, "phone", camera=False)
    roster.add_track("TR_S_x", "x", "X", "video", SHARE)
    tiles = roster.tiles(0.0)
    assert [(t.identity, t.kind) for t in tiles] == [("x", "share"), ("phone", "audio")]
    assert tiles[1].key == "participant:phone" and not tiles[1].mic_muted
    roster.set_muted("TR_A_phone", True)
    assert roster.tiles(0.0)[1].mic_muted
    roster.remove_track("TR_A_phone")
    assert [t.identity for t in roster.tiles(0.0)] == ["x"]


@pytest.mark.parametrize("current,sorted_keys,per_page,expected", [
    # the cases of LiveKit's own tests of updatePages (@livekit/components-core)
    (list("123456789") + ["10"], ["10", *"123456789"], 9, [*"12345678", "10", "9"]),
    (list("1234"), list("4123"), 9, list("1234")),
    (list("123"), list("5123"), 9, list("1235")),
    (list("1234"), list("124"), 9, list("124")),
    (list("1234"), list("234"), 2, list("324")),
])
def test_tiles_keep_their_place_as_livekit_keeps_them(current, sorted_keys, per_page, expected):
    assert update_pages(current, sorted_keys, per_page) == expected


def four_in_a_grid(layout: str = "grid") -> tuple[VideoCompositor, Roster, Clock]:
    roster, clock = Roster(), Clock()
    comp = VideoCompositor(1280, 720, Layout.parse(layout), roster=roster, clock=clock)
    people(roster, "a", "b", "c", "d")
    for i, identity in enumerate("abcd"):
        comp.add_tile(f"TR_V_{identity}")
        comp.update(f"TR_V_{identity}", solid_i420(640, 360, 60 + 40 * i), 640, 360)
    return comp, roster, clock


def boxes_by_identity(comp: VideoCompositor) -> dict[str, Rect | None]:
    return {tile.identity: box for tile, box in comp.arrangement()}


def y_plane(comp: VideoCompositor) -> np.ndarray:
    frame, _ = comp.compose()
    return frame.to_ndarray()[:720]


def test_a_new_speaker_does_not_move_tiles_on_the_grid():
    comp, roster, clock = four_in_a_grid()
    before = boxes_by_identity(comp)
    roster.set_speakers(["d"], clock.now)
    assert boxes_by_identity(comp) == before
    assert [t.identity for t in roster.tiles(clock.now)][0] == "d"


def test_placeholders_labels_and_the_speaking_ring_are_drawn():
    comp, roster, clock = four_in_a_grid()
    people(roster, "zoe", camera=False)  # a fifth, sound only: 3x3 grid, bottom row
    roster.set_muted("TR_V_b", True)
    roster.set_speakers(["c"], clock.now)
    y = y_plane(comp)
    boxes = boxes_by_identity(comp)
    a, b, c, zoe = boxes["a"], boxes["b"], boxes["c"], boxes["zoe"]
    assert int(y[a.y + a.h // 4, a.x + a.w // 2]) == 60  # a's picture, cropped to fill
    # b's camera is muted: LiveKit's placeholder, a grey silhouette on black
    assert abs(int(y[b.y + b.h * 100 // 320, b.x + b.w // 2]) - 71) <= 3  # the head, rgb(64,64,64)
    assert int(y[b.y + 2, b.x + 2]) <= 20
    # zoe publishes no video: a neutral tile with her initials' circle in the middle
    assert int(y[zoe.y + 4, zoe.x + zoe.w // 2]) == pytest.approx(42, abs=2)  # rgb(30,30,30) in Y
    assert int(y[zoe.y + zoe.h // 2, zoe.x + zoe.w // 2]) != int(y[zoe.y + 4, zoe.x + zoe.w // 2])
    # the name label: a darkened box at the bottom left of a's picture (Y 60 halved toward 16)
    label = y[a.y + a.h - 20: a.y + a.h - 6, a.x + 6: a.x + 40]
    assert (label < 50).mean() > 0.5 and label.max() > 150  # dark box with white text
    assert int(y[a.y + a.h - 60, a.x + 20]) == 60  # above the label, the picture
    # c speaks: a ring of LiveKit's accent colour inside its tile; a does not
    ring_y = int(rgb_to_i420(np.full((2, 2, 3), RING_RGB, np.uint8))[0][0, 0])
    assert int(y[c.y + 1, c.x + c.w // 2]) == ring_y and int(y[c.y + c.h // 2, c.x + 1]) == ring_y
    assert int(y[a.y + 1, a.x + a.w // 2]) == 60


def test_the_ring_stays_a_moment_after_the_speaker_stops():
    comp, roster, clock = four_in_a_grid()
    roster.set_speakers(["a"], clock.now)
    clock.now += 1
    roster.set_speakers([], clock.now)
    a = boxes_by_identity(comp)["a"]
    assert int(y_plane(comp)[a.y + 1, a.x + a.w // 2]) != 60
    clock.now += 1
    frame, changed = comp.compose()
    assert changed and int(frame.to_ndarray()[a.y + 1, a.x + a.w // 2]) == 60


def test_the_stage_waits_for_a_speaker_to_hold_the_floor():
    comp, roster, clock = four_in_a_grid("speaker")
    stage = lambda: next(t.identity for t, box in comp.arrangement() if box is not None and box.x > 0)  # noqa: E731
    assert stage() == "a"
    for who in ["b", "c", "b", "c", "b"]:  # the loudest changes every 400 ms
        roster.set_speakers([who], clock.now)
        assert stage() == "a"
        clock.now += 0.4
    roster.set_speakers(["d"], clock.now)
    assert stage() == "a"
    clock.now += STAGE_HOLD_S
    assert stage() == "d"
    roster.add_track("TR_S_c", "c", "C", "video", SHARE)
    comp.add_tile("TR_S_c", whole=True)
    assert next(t for t, box in comp.arrangement() if box is not None and box.x > 0).kind == "share"  # at once


def test_a_screen_share_turns_the_grid_into_the_speaker_layout_and_is_shown_whole():
    comp, roster, clock = four_in_a_grid()
    roster.add_track("TR_S_b", "b", "B", "video", SHARE)
    comp.add_tile("TR_S_b", whole=True)
    comp.update("TR_S_b", solid_i420(1920, 1200, 200), 1920, 1200)  # 16:10 on a 16:9 stage
    (share, box), *carousel = comp.arrangement()
    assert share.kind == "share" and box == Rect(212, 0, 1068, 720)
    assert [t.identity for t, _ in carousel] == list("abcd")
    y = y_plane(comp)
    assert int(y[360, 212 + 534]) == 200 and int(y[2, 212 + 534]) == 16  # letterboxed on the background


def test_joins_mutes_shares_and_leaves_show_on_the_very_next_frame():
    """Each change is drawn by the next compose: new geometry at once, never a frame of only background."""
    comp, roster, clock = four_in_a_grid()
    y = y_plane(comp)

    def changed_frame() -> np.ndarray:
        frame, changed = comp.compose()
        assert changed
        y = frame.to_ndarray()[:720]
        assert (y != 16).mean() > 0.5  # the tiles are there, not a black canvas
        return y

    roster.set_muted("TR_V_a", True)  # a mutes: her placeholder, in her cell, on the next frame
    a = boxes_by_identity(comp)["a"]
    y = changed_frame()
    assert int(y[a.y + a.h // 4, a.x + a.w // 2]) != 60
    people(roster, "e")  # a fifth joins: LiveKit's 3x2 grid on the next frame
    comp.add_tile("TR_V_e")
    comp.update("TR_V_e", solid_i420(640, 360, 200), 640, 360)
    boxes = boxes_by_identity(comp)
    assert all(abs(box.w - 1280 // 3) <= 2 for box in boxes.values()) and len(set(boxes.values())) == 5
    y = changed_frame()
    assert int(y[boxes["e"].y + boxes["e"].h // 4, boxes["e"].x + boxes["e"].w // 2]) == 200
    roster.add_track("TR_S_b", "b", "B Example", "video", SHARE)  # b shares: the speaker layout at once
    comp.add_tile("TR_S_b", whole=True)
    comp.update("TR_S_b", solid_i420(1280, 800, 180), 1280, 800)
    stage = next(box for tile, box in comp.arrangement() if tile.kind == "share")
    assert stage.x > 0 and stage.w > 1000
    y = changed_frame()
    assert int(y[stage.y + stage.h // 2, stage.x + stage.w // 2]) == 180
    for key in ("TR_S_b", "TR_V_e"):  # the share ends and e leaves: back to the 2x2 grid at once
        comp.remove_tile(key)
        roster.remove_track(key)
    roster.remove_track("TR_A_e")
    assert {box.w for box in boxes_by_identity(comp).values()} == {640}
    changed_frame()
