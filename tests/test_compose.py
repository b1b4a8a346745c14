"""Unit tests of the compositor, layouts and the mixer (pure numpy/PyAV, no network)."""

import numpy as np
import pytest

from pyegress.media.compose.audio import AudioMixer
from pyegress.contract.layouts import Layout
from pyegress.media.compose.layout import Rect, cover, fit, grid_layout, grid_rects, tile_rects
from pyegress.media.compose.video import VideoCompositor


def solid_i420(w: int, h: int, y: int, u: int, v: int) -> bytes:
    cw, ch = (w + 1) // 2, (h + 1) // 2
    return bytes([y]) * (w * h) + bytes([u]) * (cw * ch) + bytes([v]) * (cw * ch)


def test_layout_names():
    assert Layout.parse("") == Layout.parse("grid-dark")
    assert Layout.parse("speaker-light").kind == "speaker"
    assert Layout.parse("speaker-light").background[0] == 235
    with pytest.raises(ValueError, match="unknown layout"):
        Layout.parse("mosaic")


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 9])
def test_grid_tiles_are_disjoint_and_inside(n):
    rects = grid_rects(n, 1280, 720)
    assert len(rects) == n
    canvas = np.zeros((720, 1280), int)
    for r in rects:
        assert r.x >= 0 and r.y >= 0 and r.x + r.w <= 1280 and r.y + r.h <= 720
        assert all(v % 2 == 0 for v in (r.x, r.y, r.w, r.h))
        canvas[r.y:r.y + r.h, r.x:r.x + r.w] += 1
    assert canvas.max() == 1


def test_fit_keeps_aspect():
    r = fit(640, 360, Rect(0, 0, 640, 720))
    assert (r.w, r.h) == (640, 360) and r.y == 180


@pytest.mark.parametrize("size,expected", [
    # LiveKit's GRID_LAYOUTS choices for 1, 2, 3-4, 5-9, 10-16, 17+ tiles (docs/layouts.md)
    ((1280, 720), [(1, 1), (2, 2), (2, 4), (3, 9), (4, 16), (5, 25)]),
    ((720, 1280), [(1, 1), (1, 2), (2, 4), (3, 9), (3, 9), (3, 9)]),  # portrait; too narrow for 4x4
    ((1080, 1920), [(1, 1), (1, 2), (2, 4), (3, 9), (4, 16), (4, 16)]),
    ((640, 360), [(1, 1), (2, 2), (2, 4), (2, 4), (2, 4), (2, 4)]),
])
def test_grid_layout_is_livekits_choice(size, expected):
    for first, last, choice in zip((1, 2, 3, 5, 10, 17), (1, 2, 4, 9, 16, 30), expected):
        assert grid_layout(first, *size) == grid_layout(last, *size) == choice, (first, last)


def test_grid_fills_rows_from_the_left_and_leaves_later_pages_out():
    assert grid_rects(3, 1280, 720) == [Rect(0, 0, 640, 360), Rect(640, 0, 640, 360), Rect(0, 360, 640, 360)]
    five = grid_rects(5, 1280, 720)  # 3 columns, 2 rows, the last row from the left
    assert [(r.x, r.y) for r in five] == [(0, 0), (426, 0), (852, 0), (0, 360), (426, 360)]
    assert five[2].x + five[2].w == 1280 and all(r.h == 360 for r in five)
    nine_of_ten = grid_rects(10, 640, 360)  # 2x2 at most on a 640 px canvas: the rest is not shown
    assert nine_of_ten[4:] == [None] * 6 and None not in nine_of_ten[:4]


def test_speaker_layout_puts_the_speaker_on_the_stage_and_the_rest_in_a_carousel():
    rects = tile_rects(Layout.parse("speaker"), 3, 1280, 720, speaker_index=2)
    assert rects[2] == Rect(212, 0, 1068, 720)  # the right 5/6
    assert rects[0] == Rect(0, 0, 212, 132) and rects[1] == Rect(0, 132, 212, 132)  # 16:10, from the top
    many = tile_rects(Layout.parse("speaker"), 8, 1280, 720, speaker_index=0)
    assert sum(r is not None for r in many) == 6  # 5 whole carousel tiles fit in 720 px
    narrow = tile_rects(Layout.parse("speaker"), 2, 480, 854, speaker_index=0)
    assert narrow[0].h > narrow[1].h and narrow[1].y + narrow[1].h == 854  # the carousel along the bottom
    single = tile_rects(Layout.parse("single-speaker"), 3, 1280, 720, speaker_index=1)
    assert single[0] is None and single[2] is None and single[1] == Rect(0, 0, 1280, 720)
    alone = tile_rects(Layout.parse("speaker"), 1, 1280, 720, speaker_index=None)
    assert alone == [Rect(0, 0, 1280, 720)]


def test_cover_shows_the_middle_of_the_picture():
    assert cover(1280, 720, Rect(0, 0, 640, 720)) == Rect(320, 0, 640, 720)
    assert cover(640, 360, Rect(0, 0, 320, 180)) == Rect(0, 0, 640, 360)


def test_compositor_places_each_source_in_its_tile():
    comp = VideoCompositor(1280, 720)
    comp.add_tile("a")
    comp.add_tile("b")
    comp.update("a", solid_i420(640, 360, 200, 60, 200), 640, 360)
    comp.update("b", solid_i420(640, 360, 80, 200, 60), 640, 360)
    frame, changed = comp.compose()
    canvas = frame.to_ndarray(format="yuv420p")
    assert changed and canvas.shape == (1080, 1280)
    y = canvas[:720]
    u = canvas[720:].reshape(2, 360, 640)[0]
    # two cameras side by side, each filling its half (cropped, as LiveKit's template shows cameras)
    assert abs(int(y[360, 320]) - 200) <= 2 and abs(int(y[360, 960]) - 80) <= 2
    assert abs(int(u[180, 160]) - 60) <= 2 and abs(int(u[180, 480]) - 200) <= 2
    assert abs(int(y[4, 320]) - 200) <= 2 and abs(int(y[716, 960]) - 80) <= 2
    assert comp.compose() == (frame, False)  # nothing new: the same frame again


def stripes_i420(w: int, h: int) -> bytes:
    """Luma 50 | 150 | 250 in the left quarter, middle half and right quarter; neutral chroma."""
    y = np.full((h, w), 150, np.uint8)
    y[:, : w // 4], y[:, 3 * w // 4:] = 50, 250
    return y.tobytes() + bytes([128]) * (w * h // 2)


def test_a_camera_is_cropped_to_fill_and_a_screen_share_is_shown_whole():
    comp = VideoCompositor(1280, 720)
    comp.add_tile("camera")
    comp.add_tile("share", whole=True)
    for key in ("camera", "share"):
        comp.update(key, stripes_i420(640, 360), 640, 360)
    y = comp.compose()[0].to_ndarray(format="yuv420p")[:720]
    camera, share = y[:, :640].astype(int), y[:, 640:].astype(int)
    # the camera's 640x720 box shows the middle half of its picture, from top to bottom
    assert abs(camera[10:710, 20:620] - 150).max() <= 3
    # the share is letterboxed: all three stripes, background above and below
    assert abs(share[360, 40] - 50) <= 3 and abs(share[360, 320] - 150) <= 3 and abs(share[360, 600] - 250) <= 3
    assert share[100, 320] == 16 and share[620, 320] == 16
    assert comp.display_sizes() == {"camera": (1280, 720), "share": (640, 360)}


def test_compositor_accepts_odd_sizes():
    comp = VideoCompositor(320, 180)
    comp.add_tile("a")
    comp.update("a", solid_i420(321, 181, 120, 128, 128), 321, 181)
    frame, _ = comp.compose()
    assert abs(int(frame.to_ndarray(format="yuv420p")[90, 160]) - 120) <= 2


def test_mixer_sums_and_fills_gaps_with_silence():
    m = AudioMixer(48000, 2, prebuffer_ms=10, max_buffer_ms=200)
    m.add_track("a")
    m.add_track("b")
    m.push("a", np.full((960, 2), 3000, np.int16))
    m.push("b", np.full((480, 2), 30000, np.int16))
    out = m.mix(960)
    assert out.shape == (960, 2) and out.dtype == np.int16
    assert (out[:480] == 32767).all()  # saturates instead of wrapping
    assert (out[480:] == 3000).all()  # b ran dry: only a
    assert (m.mix(960) == 0).all()  # both dry: silence


def test_mixer_bounds_latency():
    m = AudioMixer(48000, 2, prebuffer_ms=40, max_buffer_ms=200)
    m.add_track("a")
    for i in range(50):  # 500 ms pushed without being pulled
        m.push("a", np.full((480, 2), i, np.int16))
    out = m.mix(480)
    behind_ms = (50 - int(out[0, 0])) * 10
    assert 40 <= behind_ms <= 200  # old audio was dropped: latency stays bounded


def test_mixer_for_large_frames_neither_drops_nor_underruns():
    """100 ms frames (audio-only egress) pulled in 100 ms blocks with up to 40 ms arrival jitter:
    every sample comes out once, in order, after the one-off prebuffer."""
    m = AudioMixer.for_frames(48000, 2, 100)
    assert m.latency_ns == 200_000_000
    m.add_track("a")
    block, pushed, out = 4800, 0, []
    jitter = [0, 40, 0, 20, 40, 0, 10, 40, 0, 0] * 3  # ms late, per frame
    # Frame i arrives at 100*i + jitter[i] ms; the block due at t is pulled at t + latency.
    events = sorted([(100 * i + j, 0, i) for i, j in enumerate(jitter)]
                    + [(200 + 100 * k, 1, k) for k in range(len(jitter) - 3)])
    for _, kind, i in events:
        if kind == 0:
            m.push("a", np.arange(pushed, pushed + block, dtype=np.int32).astype(np.int16).repeat(2).reshape(-1, 2))
            pushed += block
        else:
            out.append(m.mix(block)[:, 0].astype(np.int32))
    samples = np.concatenate(out)
    assert (samples == np.arange(len(samples)).astype(np.int16)).all()
