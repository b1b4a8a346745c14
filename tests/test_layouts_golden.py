"""Golden tests of what a room composite draws: every scene of :mod:`pyegress.devtools.scenes` (grids of 1 to
10, placeholders, audio-only tiles, a screen share, the speaker layouts and their stage, long and non-Latin
names, light backgrounds, portrait canvases and cameras) rendered with the real compositor and compared with
its reference picture in ``tests/golden/<scene>.png`` (RGB at half the canvas size).

The comparison (:func:`~pyegress.devtools.scenes.similarity`) blurs both pictures slightly and asks for a PSNR
of at least 38 dB overall and 31 dB in every 48x48 canvas-px block (blocks overlapping by half): another
scaling filter or glyphs moved by half a pixel pass, a missing label, mute mark or speaking ring, a moved tile
or a wrong colour fail (the sensitivity tests below measure both sides).

When a change to the pictures is intended, regenerate the references and look at them before committing::

    scripts/layouts --golden tests/golden        # or: python -m pyegress.devtools.scenes --golden tests/golden
    scripts/layouts                              # the gallery of docs/layouts.md too

A failing comparison saves ``actual.png``, ``expected.png`` and ``diff.png`` (differences amplified 4x)
under pytest's tmp path and names the folder in the failure message.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image, ImageChops

from pyegress.devtools import scenes
from pyegress.devtools.patterns import VideoPattern
from pyegress.devtools.scenes import MIN_BLOCK_PSNR_DB, MIN_PSNR_DB, SCENES, Room, golden_image, similarity
from pyegress.media.compose import labels, video
from pyegress.media.compose.labels import Overlay
from pyegress.media.compose.layout import Rect

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).parent / "golden"
REGENERATE = "scripts/layouts --golden tests/golden"


def reference(name: str) -> Image.Image:
    path = GOLDEN / f"{name}.png"
    if not path.exists():
        pytest.fail(f"no golden reference {path}; create it with {REGENERATE}")
    return Image.open(path).convert("RGB")


def rendered(name: str) -> Image.Image:
    return golden_image(SCENES[name].render())


@pytest.fixture
def fresh_labels():
    """Label and placeholder caches emptied before and after: a test that changes how they are drawn must
    neither see nor leave behind pictures drawn the other way."""
    caches = (labels.name_label, labels.audio_only_placeholder, labels.camera_off_placeholder)
    for cache in caches:
        cache.cache_clear()
    yield
    for cache in caches:
        cache.cache_clear()


@pytest.mark.parametrize("name", list(SCENES))
def test_scene_matches_its_golden_picture(name, tmp_path):
    actual, expected = rendered(name), reference(name)
    result = similarity(actual, expected)
    if not result.ok:
        out = tmp_path / name
        out.mkdir()
        actual.save(out / "actual.png")
        expected.save(out / "expected.png")
        ImageChops.difference(actual, expected).point(lambda v: min(255, 4 * v)).save(out / "diff.png")
        pytest.fail(f"{name} differs from {GOLDEN / (name + '.png')}: {result}.\n"
                    f"Pictures in {out} (actual.png, expected.png, diff.png). If the change is intended: {REGENERATE}")


def test_scenes_are_byte_stable():
    a, b = SCENES["speaker-speaking"].render(), SCENES["speaker-speaking"].render()
    assert np.array_equal(a, b)


# ---- the comparison catches real changes ...

def test_a_muted_camera_is_far_from_the_plain_grid():
    result = similarity(reference("camera-muted"), reference("grid-4"))
    assert result.psnr_db < MIN_PSNR_DB - 15 and result.worst_block_db < MIN_BLOCK_PSNR_DB - 20  # 15.1 / 4.9 dB


def test_the_ring_alone_is_caught():
    # speaker-hold is speaker-4 plus one 2 px ring round a carousel tile: the smallest change of the catalogue
    result = similarity(reference("speaker-hold"), reference("speaker-4"))
    assert result.psnr_db > MIN_PSNR_DB  # the whole picture's PSNR cannot see it (45.7 dB) ...
    assert result.worst_block_db < MIN_BLOCK_PSNR_DB - 3  # ... its block can (27.3 dB)


def test_missing_labels_fail(monkeypatch, fresh_labels):
    monkeypatch.setattr(video, "name_label", lambda *a, **k: Overlay(np.zeros((2, 2, 4), np.uint8)))
    for name in ("grid-4", "screen-share", "names-international"):
        result = similarity(rendered(name), reference(name))
        assert not result.ok and result.worst_block_db < 20, (name, str(result))  # 10-18 dB


def test_missing_mute_marks_fail(monkeypatch, fresh_labels):
    drawn = video.name_label
    monkeypatch.setattr(video, "name_label", lambda name, muted, *a, **k: drawn(name, False, *a, **k))
    for name in ("grid-4", "audio-only", "names-international"):
        result = similarity(rendered(name), reference(name))
        assert not result.ok and result.worst_block_db < MIN_BLOCK_PSNR_DB - 3, (name, str(result))  # 19-27 dB


def test_a_missing_ring_fails(monkeypatch):
    monkeypatch.setattr(video.VideoCompositor, "_ring_around", lambda self, box, planes: None)
    for name in ("speaker-hold", "speaker-speaking", "grid-speaking", "single-speaker"):
        result = similarity(rendered(name), reference(name))
        assert not result.ok, (name, str(result))  # 27.3 dB and below


def test_tiles_moved_by_a_few_pixels_fail(monkeypatch):
    tile_rects = video.tile_rects

    def shifted(*args):  # as an off-by-some error in the geometry would
        return [r and Rect(r.x + 4, r.y, r.w - 4, r.h) for r in tile_rects(*args)]

    monkeypatch.setattr(video, "tile_rects", shifted)
    for name in ("grid-4", "grid-9", "speaker-4"):
        result = similarity(rendered(name), reference(name))
        assert not result.ok, (name, str(result))


def test_wrong_colours_fail(monkeypatch):
    monkeypatch.setattr(scenes, "VideoPattern", lambda w, h, fps, index: VideoPattern(w, h, fps, index + 1))
    result = similarity(rendered("grid-4"), reference("grid-4"))
    assert result.psnr_db < 25 and result.worst_block_db < 20, str(result)
    # one tile's chroma swapped, its luma (and so a grey-level comparison) unchanged
    room = scenes._four()
    y, u, v = video.i420_planes(bytes(VideoPattern(640, 360, 30, 0).render(120)), 640, 360)  # as Room.camera
    swapped = np.concatenate([y.ravel(), v.ravel(), u.ravel()]).tobytes()
    room.comp.update("TR_V_p0", swapped, 640, 360)
    assert not similarity(golden_image(room.rgb()), reference("grid-4")).ok


# ---- ... and lets rendering differences of another machine pass

@pytest.mark.parametrize("interpolation", ["BICUBIC", "LANCZOS", "AREA"])
def test_another_scaling_filter_passes(monkeypatch, interpolation):
    reformat = av.VideoFrame.reformat

    def other_filter(frame, *args, **kwargs):
        kwargs["interpolation"] = interpolation
        return reformat(frame, *args, **kwargs)

    monkeypatch.setattr(av.VideoFrame, "reformat", other_filter)
    for name in ("grid-1", "grid-9", "speaker-4", "screen-share", "portrait-camera"):
        result = similarity(rendered(name), reference(name))
        assert result.ok and result.worst_block_db > MIN_BLOCK_PSNR_DB + 5, (name, str(result))  # >= 39 dB


def test_text_moved_by_half_a_pixel_passes(monkeypatch, fresh_labels):
    # what another FreeType/HarfBuzz may do: advances rounded otherwise, every glyph a fraction of a px off
    draw_line = labels._draw_line
    monkeypatch.setattr(labels, "_draw_line", lambda img, line, x, *a: draw_line(img, line, x + 0.5, *a))
    for name in ("names-long", "names-international", "portrait-grid-10", "audio-only"):
        result = similarity(rendered(name), reference(name))
        assert result.ok, (name, str(result))  # >= 33.8 dB per block


# ---- what the scenes rely on

def test_a_new_speaker_on_the_stage_takes_the_carousel_cell_of_the_one_it_replaces():
    room = scenes._four("speaker")

    def carousel() -> list[str]:
        return [t.identity for t, box in room.comp.arrangement() if box is not None and box.x == 0]

    assert carousel() == ["p1", "p2", "p3"]
    room.speak("p2", for_s=scenes.STAGE_HOLD_S)
    assert carousel() == ["p1", "p0", "p3"]  # p0 left the stage for p2's cell; nobody else moved


def test_a_room_is_deterministic_without_a_wall_clock():
    room = Room(640, 360, "grid")
    room.camera("A B")
    assert room.clock.now == 1000.0 and room.rgb().shape == (360, 640, 3)
