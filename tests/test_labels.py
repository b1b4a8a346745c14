"""Participant-tile decorations: name labels (scripts, bidi, shaping, emoji, ellipsis), I420 blending, placeholders."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image, ImageDraw

from pyegress.media.compose import labels as L
from pyegress.media.compose.labels import (
    ELLIPSIS,
    LabelsUnavailable,
    Overlay,
    audio_only_placeholder,
    avatar_color,
    camera_off_placeholder,
    graphemes,
    initials,
    name_label,
)

pytestmark = pytest.mark.unit

NAMES = ["Анна", "Ελένη", "王小明", "さくら", "김민수", "محمد", "שרה", "😀 Bob"]
MISSING = "\u0378"  # unassigned: no font has it, so it is drawn as the missing-glyph box


def ink(o: Overlay) -> np.ndarray:
    """Where the label has text or icon ink: brighter or more colourful than its black background."""
    return o.rgba[..., :3].max(axis=2) > 40


def ink_crop(o: Overlay) -> np.ndarray:
    """The label's text ink ``(H, W)`` as float luminance, cropped to its bounding box."""
    m = ink(o)
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    return o.rgba[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1, :3].astype(np.float32).mean(axis=2)


def notdef_inks(px: int) -> list[np.ndarray]:
    """The missing-glyph box of every font of the chain at ``px`` px, cropped to its ink."""
    out = []
    for font in L.FONTS:
        f = L._font(font.name, px)
        img = Image.new("L", (4 * px, 4 * px), 0)
        ImageDraw.Draw(img).text((px, 3 * px), MISSING, font=f, fill=255, anchor="ls")
        a = np.asarray(img, dtype=np.float32)
        if a.any():
            rows, cols = np.flatnonzero(a.any(axis=1)), np.flatnonzero(a.any(axis=0))
            out.append(a[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1])
    return out


def ends_with_ellipsis(label: Overlay, scale: float, left: bool = False) -> bool:
    """Whether the first (``left``) or last ink of ``label`` is the ellipsis glyph, at its own height."""
    dots = name_label(ELLIPSIS, False, scale)
    m = ink(dots)
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    want = dots.rgba[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1, :3].mean(axis=2)
    inked = np.flatnonzero(ink(label).any(axis=0))
    start = inked[0] if left else inked[-1] - want.shape[1] + 1
    got = label.rgba[rows[0]: rows[-1] + 1, start: start + want.shape[1], :3].mean(axis=2)
    return got.shape == want.shape and float(np.abs(got - want).mean()) < 40


def same_picture(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and float(np.abs(a - b).mean()) < 8


@pytest.mark.parametrize("name", NAMES)
def test_every_script_renders_without_missing_glyph_boxes(name):
    label = name_label(name, False, 2.0)
    clusters = [c for c in graphemes(name) if not c.isspace()]
    tofu = name_label(MISSING * len(clusters), False, 2.0)
    assert not same_picture(ink_crop(label), ink_crop(tofu))
    boxes = notdef_inks(28)
    assert boxes, "the missing-glyph boxes themselves must have ink"
    for c in clusters:
        glyph = name_label(c, False, 2.0)
        assert ink(glyph).sum() > 20, f"{c!r} has no ink"
        for box in boxes:
            assert not same_picture(ink_crop(glyph), box), f"{c!r} of {name!r} is drawn as a missing-glyph box"


@pytest.mark.parametrize("name", ["محمد", "שרה"])
def test_right_to_left_names_run_from_the_right(name):
    """Without its first (logical) character the name loses ink at its right end, not its left."""
    full, rest = ink_crop(name_label(name, False, 3.0)), ink_crop(name_label(name[1:], False, 3.0))
    h = min(full.shape[0], rest.shape[0])
    w = rest.shape[1]
    left = np.abs(full[-h:, :w] - rest[-h:]).mean()
    right = np.abs(full[-h:, -w:] - rest[-h:]).mean()
    assert left < right
    # and a left-to-right name, the other way round (the comparison can tell)
    full, rest = ink_crop(name_label("Anna", False, 3.0)), ink_crop(name_label("nna", False, 3.0))
    h, w = min(full.shape[0], rest.shape[0]), rest.shape[1]
    assert np.abs(full[-h:, -w:] - rest[-h:]).mean() < np.abs(full[-h:, :w] - rest[-h:]).mean()


@pytest.mark.parametrize("name,emoji_left", [("שרה 😀", True), ("😀 שרה", False), ("محمد 12 😀", True),
                                             ("Bob 😀", False), ("😀 Bob", True)])
def test_runs_of_different_fonts_are_ordered_by_direction(name, emoji_left):
    """An emoji (its own font's run) at the logical end of a right-to-left name is drawn at its left."""
    label = name_label(name, False, 2.0)
    rgb = label.rgba[..., :3].astype(int)
    colour = np.flatnonzero(((rgb.max(axis=2) - rgb.min(axis=2)) > 100).any(axis=0))
    white = np.flatnonzero((rgb.min(axis=2) > 200).any(axis=0))
    centre_colour, centre_white = colour.mean(), white[(white < colour[0]) | (white > colour[-1])].mean()
    assert (centre_colour < centre_white) == emoji_left


def test_arabic_letters_are_joined():
    """Shaped, "محمد" is one connected stroke: no empty column across its ink; its letters drawn one by one
    (and the same letters kept apart by zero-width non-joiners) leave gaps between them."""
    joined = ink_crop(name_label("محمد", False, 3.0))
    assert (joined > 60).any(axis=0).all()
    isolated = [ink_crop(name_label(c, False, 3.0)) for c in "محمد"]
    rows = max(g.shape[0] for g in isolated)
    side_by_side = np.concatenate([np.pad(g, ((rows - g.shape[0], 0), (0, 3))) for g in reversed(isolated)], axis=1)
    assert not same_picture(joined, side_by_side)
    apart = ink_crop(name_label("\u200c".join("محمد"), False, 3.0))
    assert not (apart > 60).any(axis=0).all()


def test_emoji_are_in_colour():
    rgb = name_label("😀 Bob", False, 2.0).rgba[..., :3].astype(int)
    colourful = (rgb.max(axis=2) - rgb.min(axis=2)) > 100
    assert colourful.sum() > 50
    # white text alone has none
    rgb = name_label("Bob", False, 2.0).rgba[..., :3].astype(int)
    assert not ((rgb.max(axis=2) - rgb.min(axis=2)) > 100).any()


def test_a_long_name_is_ellipsized_to_the_width_and_a_short_one_is_not():
    long = "Bartholomew Fitzgerald-Montgomery the Third"
    label = name_label(long, False, 1.0, 200)
    assert 150 < label.width <= 200
    whole = name_label(long, False, 1.0, 10_000)
    assert whole.width > 200
    assert ends_with_ellipsis(label, 1.0)
    assert not ends_with_ellipsis(whole, 1.0)  # "d" is not dots: the check can tell
    short = name_label("Bob", False, 1.0, 200)
    assert np.array_equal(short.rgba, name_label("Bob", False, 1.0, 10_000).rgba)


def test_an_rtl_name_is_ellipsized_at_its_logical_end_on_the_left():
    name = "محمد بن عبد الله الطويل جدا جدا جدا"
    label = name_label(name, False, 2.0, 300)
    assert label.width <= 300
    assert ends_with_ellipsis(label, 2.0, left=True)
    assert not ends_with_ellipsis(label, 2.0)
    assert not ends_with_ellipsis(name_label(name, False, 2.0), 2.0, left=True)


@pytest.mark.parametrize("unit", ["q\u0307", "👩\u200d👩\u200d👧", "🇫🇷", "\ud83d\ude00"])
def test_ellipsis_cuts_between_grapheme_clusters(unit):
    text = L._clean(unit * 40)
    line = L._ellipsize(graphemes(text), 14, 2, 120)
    drawn = "".join(r.text for r in line.runs)
    assert drawn.endswith(ELLIPSIS) and line.width <= 120
    kept = drawn[: -len(ELLIPSIS)]
    whole = L._clean(unit)
    assert kept and kept == whole * (len(kept) // len(whole))


def test_muted_label_has_the_red_icon_on_the_left():
    plain, muted = name_label("Ada", False, 2.0), name_label("Ada", True, 2.0)
    assert muted.width >= plain.width + 2 * 16
    rgb = muted.rgba[..., :3].astype(int)
    red = (rgb[..., 0] > 150) & (rgb[..., 1] < 100) & (rgb[..., 2] < 120)
    cols = np.flatnonzero(red.any(axis=0))
    assert red.sum() > 30 and cols.max() < 2 * (4 + 16)
    rgb = plain.rgba[..., :3].astype(int)
    assert not ((rgb[..., 0] > 150) & (rgb[..., 1] < 100)).any()


def grey_canvas(w: int = 200, h: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.full((h, w), 126, np.uint8), np.full((h // 2, w // 2), 128, np.uint8),
            np.full((h // 2, w // 2), 128, np.uint8))


@pytest.mark.parametrize("x,y", [(10, 6), (11, 7)])
def test_blending_changes_only_the_label_and_halves_the_background(x, y):
    label = name_label("Ada", True, 1.0)
    yp, up, vp = grey_canvas()
    label.blend_into(yp, up, vp, x, y)
    changed = np.argwhere(yp != 126)
    assert changed[:, 0].min() >= y and changed[:, 0].max() < y + label.height
    assert changed[:, 1].min() >= x and changed[:, 1].max() < x + label.width
    # pure background (black at alpha 0.5): about half way from grey 126 to black 16
    a = label.rgba[..., 3].astype(int)
    bg = (a == 128) & (label.rgba[..., :3].max(axis=2) == 0)
    got = yp[y: y + label.height, x: x + label.width][bg]
    assert bg.sum() > 100 and np.all(np.abs(got.astype(int) - (16 * 128 + 126 * 127) / 255) <= 1)
    # the whole rectangle against a float reference
    ys, _, _ = L._rgb_to_yuv(label.rgba[..., :3])
    ref = (ys * a + 126 * (255 - a)) / 255
    assert np.abs(yp[y: y + label.height, x: x + label.width] - ref).max() <= 1
    # chroma: the red icon raises V exactly where its luma pixels fall, at this parity
    red = (label.rgba[..., 0] > 150) & (label.rgba[..., 1] < 100) & (a > 200)
    rows, cols = np.nonzero(red)
    expected = {((y + r) // 2, (x + c) // 2) for r, c in zip(rows, cols)}
    raised = {tuple(p) for p in np.argwhere(vp > 150)}
    assert raised and raised <= expected
    changed_c = np.argwhere((up != 128) | (vp != 128))
    assert changed_c[:, 0].min() >= y // 2 and changed_c[:, 0].max() <= (y + label.height - 1) // 2
    assert changed_c[:, 1].min() >= x // 2 and changed_c[:, 1].max() <= (x + label.width - 1) // 2


def test_blending_at_the_edges_clips():
    label = name_label("Ada Lovelace", True, 1.0)
    for x, y in [(-5, -3), (-label.width + 1, 0), (195, 95), (199, 99), (300, 10), (10, -500)]:
        yp, up, vp = grey_canvas()
        label.blend_into(yp, up, vp, x, y)
        assert yp.shape == (100, 200) and up.shape == (50, 100)
        changed = np.argwhere(yp != 126)
        if len(changed):
            assert changed[:, 0].min() >= max(y, 0) and changed[:, 1].min() >= max(x, 0)
    yp, up, vp = grey_canvas()
    label.blend_into(yp, up, vp, -5, -3)
    assert yp[0, 0] < 126  # the visible part is drawn
    ref_y, _, _ = grey_canvas()
    label.blend_into(ref_y, *grey_canvas()[1:], 0, 0)
    assert np.array_equal(yp[: label.height - 3, : label.width - 5], ref_y[3: label.height, 5: label.width])


def test_labels_and_placeholders_are_cached():
    a = name_label("Cache Me", True, 1.5, 400)
    start = time.perf_counter()
    for _ in range(100):
        b = name_label("Cache Me", True, 1.5, 400)
    assert b is a and (time.perf_counter() - start) / 100 < 1e-4
    assert camera_off_placeholder(320, 180) is camera_off_placeholder(320, 180)
    assert audio_only_placeholder(320, 180, "Ada", True) is audio_only_placeholder(320, 180, "Ada", True)
    with pytest.raises(ValueError):
        camera_off_placeholder(320, 180)[0][0, 0] = 1  # shared planes are read-only


@pytest.mark.parametrize("w,h", [(640, 360), (240, 400)])
def test_camera_off_placeholder_silhouette(w, h):
    yp, up, vp = camera_off_placeholder(w, h)
    assert yp.shape == (h, w) and up.shape == vp.shape == ((h + 1) // 2, (w + 1) // 2)
    side = min(h, 0.8 * w)
    ox, oy = (w - side) / 2, (h - side) / 2
    head = yp[round(oy + 100 * side / 320), round(ox + 160 * side / 320)]
    assert abs(int(head) - 71) <= 1  # rgb(64, 64, 64) in BT.601 limited range
    assert yp[0, 0] == yp[0, -1] == yp[-1, 0] == yp[-1, -1] == 16
    assert np.all(np.abs(up.astype(int) - 128) <= 1) and np.all(np.abs(vp.astype(int) - 128) <= 1)
    # the silhouette spans its square: head top at 20/320, body 21..299 wide, down to the square's bottom
    rows, cols = np.flatnonzero((yp > 20).any(axis=1)), np.flatnonzero((yp > 20).any(axis=0))
    assert abs(rows[0] - (oy + 20 * side / 320)) <= 2 and abs(rows[-1] - (oy + side - 1)) <= 2
    assert abs(cols[0] - (ox + 21 * side / 320)) <= 2 and abs(cols[-1] - (ox + 299 * side / 320)) <= 2


def test_initials():
    assert initials("ada lovelace byron") == "AL"
    assert initials("王小明") == "王"
    assert initials("😀 Bob") == "😀B"
    assert initials("ßeta x") == "ßX"
    assert initials("q\u0307x y") == "Q\u0307Y"
    assert initials("👩\u200d👩\u200d👧 Family") == "👩\u200d👩\u200d👧F"
    assert initials("  ") == ""


def test_audio_only_placeholder_circle_and_initials():
    w, h = 320, 240
    yp, up, vp = audio_only_placeholder(w, h, "Ada Lovelace", True)
    d = 0.4 * min(w, h)
    rr, cc = np.mgrid[0:h, 0:w]
    dist = np.hypot(rr + 0.5 - h / 2, cc + 0.5 - w / 2)
    white = yp > 200
    assert white.sum() > 50 and not white[dist > d / 2 - 1].any()
    bg = L._rgb_to_yuv(np.array([[L.AUDIO_BACKGROUNDS[True]]], np.uint8))[0][0, 0]
    assert yp[2, 2] == bg and yp[-3, -3] == bg
    # the circle's colour below the initials is the name's own
    exp = [int(p[0, 0]) for p in L._rgb_to_yuv(np.array([[avatar_color("Ada Lovelace")]], np.uint8))]
    r, c = int(h / 2 + 0.4 * d), w // 2
    assert abs(int(yp[r, c]) - exp[0]) <= 1
    assert abs(int(up[r // 2, c // 2]) - exp[1]) <= 1 and abs(int(vp[r // 2, c // 2]) - exp[2]) <= 1
    light = audio_only_placeholder(w, h, "Ada Lovelace", False)[0]
    assert light[2, 2] > 200
    for name in ["王小明", "😀 Bob", "محمد علي"]:
        y2 = audio_only_placeholder(w, h, name, True)[0]
        assert ((y2 > 200) | (np.abs(y2.astype(int) - yp.astype(int)) > 30))[dist < d / 2].sum() > 30


def test_avatar_colour_is_stable_and_varies():
    names = ["Ada", "Bob", "Chen", "Dana", "Émile", "Farah", "Gil", "Hana", "Ivan", "Jo"]
    first = [avatar_color(n) for n in names]
    assert len(set(first)) >= 4
    audio_only_placeholder.cache_clear()
    a = audio_only_placeholder(200, 200, "Ada", True)[1].copy()
    audio_only_placeholder.cache_clear()
    assert np.array_equal(a, audio_only_placeholder(200, 200, "Ada", True)[1])
    # and across processes with different str-hash salts
    code = f"from pyegress.media.compose.labels import avatar_color; print([avatar_color(n) for n in {names!r}])"
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert outs == {repr(first) + "\n"}


def test_missing_fonts_and_raqm_are_named(monkeypatch):
    monkeypatch.setattr(L, "FONTS", (L.FontFile("x", "/nonexistent/NotoSansCJK-Regular.ttc", "fonts-noto-cjk"),))
    with pytest.raises(LabelsUnavailable, match="fonts-noto-cjk"):
        L.check_available()
    monkeypatch.setattr(L.features, "check", lambda name: False)
    with pytest.raises(LabelsUnavailable, match="libraqm0"):
        L.check_available()
