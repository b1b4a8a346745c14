"""The video compositor: places the latest frame of each video track on an I420 canvas.

Everything stays in yuv420p planes (see docs/architecture.md: going through RGB
doubles the cost). Scaling is libswscale through PyAV; placement is numpy
slice copies. A source frame is scaled at most once, however many output
frames show it.

A room composite's compositor has a :class:`~.roster.Roster` and draws LiveKit's participant tiles
(docs/layouts.md): every participant in LiveKit's order, kept in place when the order changes; a placeholder
for a muted camera or a participant without one; the name with a muted-microphone mark; a ring around who
speaks; a screen share on the stage. Other egresses (participant, track composite) show their video tracks
bare, in the order they came.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import av
import numpy as np

from ...contract.layouts import BACKGROUNDS, Layout
from .labels import audio_only_placeholder, camera_off_placeholder, name_label, rgb_to_i420
from .layout import Rect, carousel_capacity, cover, fit, grid_layout, tile_rects
from .roster import Roster, Tile, update_pages

#: How long (s) a new first in LiveKit's order must stay first before it takes the speaker layout's stage
#: from the one there (a screen share takes it at once): speakers alternating every 400 ms do not flicker.
STAGE_HOLD_S = 1.5
#: The speaking ring (components-styles: 2.5 px of --lk-accent-bg #1f8cf9 inside the tile), CSS px at 720p
RING_PX = 2.5
RING_RGB = (0x1F, 0x8C, 0xF9)
#: A camera tile before its first picture (the template's video element is black)
VIDEO_BACKGROUND = BACKGROUNDS["dark"]


def i420_planes(buf: memoryview | bytes, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of the Y ``(H, W)``, U and V ``(ceil(H/2), ceil(W/2))`` uint8 planes of a tightly packed I420 buffer."""
    cw, ch = (width + 1) // 2, (height + 1) // 2
    flat = np.frombuffer(buf, dtype=np.uint8)
    y = flat[: width * height].reshape(height, width)
    u = flat[width * height: width * height + cw * ch].reshape(ch, cw)
    v = flat[width * height + cw * ch: width * height + 2 * cw * ch].reshape(ch, cw)
    return y, u, v


def i420_to_av(buf: memoryview | bytes, width: int, height: int) -> av.VideoFrame:
    """A yuv420p ``av.VideoFrame`` from a tightly packed I420 buffer; odd sizes are cropped to even."""
    if width % 2 == 0 and height % 2 == 0:
        arr = np.frombuffer(buf, dtype=np.uint8)[: width * height * 3 // 2].reshape(height * 3 // 2, width)
    else:
        y, u, v = i420_planes(buf, width, height)
        w, h = width & ~1, height & ~1
        arr = np.concatenate([y[:h, :w].ravel(), u[: h // 2, : w // 2].ravel(), v[: h // 2, : w // 2].ravel()])
        arr = arr.reshape(h * 3 // 2, w)
        width, height = w, h
    return av.VideoFrame.from_ndarray(arr, format="yuv420p")


def _even_up(v: float) -> int:
    return (int(v + 0.999) + 1) & ~1


@dataclass
class _Picture:
    """A video track's newest picture and its scaled copy."""

    key: str
    whole: bool = False  # shown whole (letterboxed), as a screen share; else a landscape picture fills its box
    source: tuple[memoryview | bytes, int, int] | None = None  # tightly packed I420, width, height
    scaled: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # Y, U, V planes of the source at ``rect`` size
    rect: Rect | None = None

    def placement(self, box: Rect) -> tuple[Rect, Rect]:
        """``(crop, rect)``: the part of the source shown (source px) and where it goes on the canvas.
        As LiveKit's template shows video: a landscape camera fills its box (CSS ``object-fit: cover``,
        cropped), a portrait or square one and a screen share are shown whole (``contain``)."""
        _, w, h = self.source
        if self.whole or w <= h:
            return Rect(0, 0, w & ~1, h & ~1), fit(w, h, box)
        return cover(w, h, box), box


@dataclass
class VideoCompositor:
    """Composites tiles onto a ``width`` x ``height`` yuv420p canvas.

    Pictures are keyed by video track SID (:meth:`add_tile`, :meth:`update`). With a ``roster`` (a room
    composite) the tiles are the roster's participant tiles, decorated; without one, a tile per video track
    in the order they were added. ``compose()`` returns the canvas as a yuv420p ``av.VideoFrame``. ``clock``
    gives the time (s) that speaking marks and the stage's hold count in.
    """

    width: int
    height: int
    layout: Layout = field(default_factory=lambda: Layout.parse("grid"))
    roster: Roster | None = None
    clock: Callable[[], float] = time.monotonic
    _pictures: dict[str, _Picture] = field(default_factory=dict)
    _speaker: str | None = None
    _dirty: bool = True
    _frame: av.VideoFrame | None = None
    _drawn: list[tuple[Tile, Rect | None]] | None = None
    _order: tuple[int, list[str]] = (0, [])  # grid: tiles per page, keys in the order shown
    _carousel: tuple[int, list[str]] = (0, [])  # speaker layout: tiles it fits, keys in the order shown
    #: whether the last :meth:`compose` drew other tiles, boxes or marks than the one before
    rearranged: bool = False
    _stage: str | None = None
    _contender: tuple[str | None, float] = (None, 0.0)  # first in order but not on the stage yet, since when

    def __post_init__(self) -> None:
        if self.width % 2 or self.height % 2:
            raise ValueError(f"canvas size must be even, got {self.width}x{self.height}")
        self.scale = max(1.0, self.height / 720)
        self._ring = max(2, int(RING_PX * self.scale) & ~1)
        self._ring_yuv = tuple(int(p[0, 0]) for p in rgb_to_i420(np.full((2, 2, 3), RING_RGB, np.uint8)))

    def add_tile(self, key: str, whole: bool = False) -> None:
        """Add a picture for video track ``key``; ``whole``: shown whole, never cropped (a screen share)."""
        if key not in self._pictures:
            self._pictures[key] = _Picture(key, whole)
            self._dirty = True

    def remove_tile(self, key: str) -> None:
        if self._pictures.pop(key, None) is not None:
            self._dirty = True

    def set_layout(self, layout: Layout) -> None:
        if layout != self.layout:
            self.layout = layout
            self._dirty = True

    def set_active_speaker(self, key: str | None) -> None:
        """Put the tile ``key`` on the stage of a speaker layout (without a roster; with one, the roster's
        speakers decide)."""
        if key != self._speaker and (key is None or key in self._pictures):
            self._speaker = key
            self._dirty = self._dirty or self.layout.kind != "grid"

    def update(self, key: str, i420: memoryview | bytes, width: int, height: int) -> None:
        """Replace the tile's source frame (tightly packed I420, ``width`` x ``height`` pixels).

        The buffer is kept by reference and converted and scaled lazily at the
        next compose, so frames replaced before then cost nothing.
        """
        picture = self._pictures.get(key)
        if picture is None:
            return
        picture.source = (i420, width, height)
        picture.scaled = None
        self._dirty = True

    # ---- where tiles go ------------------------------------------------------
    def arrangement(self) -> list[tuple[Tile, Rect | None]]:
        """The tiles in the order drawn, each with its box on the canvas (None: not shown)."""
        if self.roster is None:
            tiles = [Tile(key, "", "", "share" if p.whole else "camera") for key, p in self._pictures.items()]
            keys = list(self._pictures)
            speaker = keys.index(self._speaker) if self._speaker in self._pictures else None
            return list(zip(tiles, tile_rects(self.layout, len(tiles), self.width, self.height, speaker)))
        now = self.clock()
        tiles = self.roster.tiles(now)
        by_key = {t.key: t for t in tiles}
        layout = self.layout
        if layout.kind == "grid" and not any(t.kind == "share" for t in tiles):
            per_page = grid_layout(len(tiles), self.width, self.height)[1]
            shown, order = self._order
            keys = update_pages(order, list(by_key), per_page) if shown == per_page else list(by_key)
            self._order = (per_page, keys)
        else:  # the speaker layouts, and a grid while a screen is shared (as LiveKit's template)
            if layout.kind == "grid":
                layout = Layout("speaker", layout.background)
            self._stage = self._next_stage(tiles, now)
            rest = [k for k in by_key if k != self._stage]
            fits = carousel_capacity(self.width, self.height)
            shown, carousel = self._carousel
            carousel = update_pages(carousel, rest, fits) if shown == fits else rest
            self._carousel = (fits, carousel)
            keys = ([self._stage] if self._stage else []) + carousel
        ordered = [by_key[k] for k in keys]
        return list(zip(ordered, tile_rects(layout, len(ordered), self.width, self.height, 0)))

    def _next_stage(self, tiles: list[Tile], now: float) -> str | None:
        """Who is on the speaker layout's stage: the first in LiveKit's order once it has been first for
        :data:`STAGE_HOLD_S`; at once when the stage is empty or it is a screen share."""
        if not tiles:
            return None
        first = tiles[0]
        keys = {t.key for t in tiles}
        if self._stage not in keys or first.kind == "share" or first.key == self._stage:
            self._contender = (None, 0.0)
            return first.key
        contender, since = self._contender
        if contender != first.key:
            self._contender = (first.key, now)
            return self._stage
        if now - since >= STAGE_HOLD_S:
            self._contender = (None, 0.0)
            return first.key
        return self._stage

    def boxes(self) -> dict[str, Rect | None]:
        """Each video track's box on the canvas in the current layout (None: not shown), by key."""
        boxes: dict[str, Rect | None] = dict.fromkeys(self._pictures)
        for tile, box in self.arrangement():
            if tile.key in boxes and tile.kind != "audio" and not tile.video_muted:
                boxes[tile.key] = box
        return boxes

    def display_sizes(self) -> dict[str, tuple[int, int] | None]:
        """The size (px) at which each tile's source would be shown pixel for pixel (a filled box needs
        the source scaled past it), by key; the box's size before a picture came; None: not shown. What
        a simulcast layer must have to look sharp in the tile."""
        sizes: dict[str, tuple[int, int] | None] = {}
        for key, box in self.boxes().items():
            picture = self._pictures[key]
            if box is None or picture.source is None:
                sizes[key] = None if box is None else (box.w, box.h)
                continue
            crop, rect = picture.placement(box)
            _, w, h = picture.source
            sizes[key] = (_even_up(w * rect.w / crop.w), _even_up(h * rect.h / crop.h))
        return sizes

    # ---- drawing -------------------------------------------------------------
    def compose(self, at_ns: int | None = None) -> tuple[av.VideoFrame, bool]:
        """Return ``(frame, changed)``: a yuv420p ``av.VideoFrame`` of the canvas as its tiles are now
        (``at_ns`` is not needed: a :class:`~..sync.playout.Playout` updates the tiles for it).

        When nothing changed since the last call (pictures, tiles, marks), the previous frame object is
        returned again with ``changed`` False. A changed canvas is drawn straight into a new frame's planes
        (no intermediate copy; PyAV's ``from_ndarray`` would cost 10x a memcpy); frames handed out are never
        written again, so an encoder may still hold them.
        """
        arrangement = self.arrangement()
        self.rearranged = arrangement != self._drawn
        if not self._dirty and self._frame is not None and not self.rearranged:
            return self._frame, False
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        planes = tuple(np.frombuffer(p, dtype=np.uint8).reshape(-1, p.line_size)[: p.height, : p.width]
                       for p in frame.planes)
        for plane, value in zip(planes, self.layout.background):
            plane.fill(value)
        for tile, box in arrangement:
            if box is not None:
                self._draw(tile, box, planes)
        self._dirty = False
        self._drawn = arrangement
        self._frame = frame
        return frame, True

    def _draw(self, tile: Tile, box: Rect, planes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        decorated = self.roster is not None
        picture = self._pictures.get(tile.key)
        if tile.kind == "audio":
            _blit(audio_only_placeholder(box.w, box.h, tile.name, self.layout.background == BACKGROUNDS["dark"]),
                  box, planes)
        elif tile.video_muted:
            _blit(camera_off_placeholder(box.w, box.h), box, planes)
        elif picture is not None and picture.source is not None:
            crop, rect = picture.placement(box)
            if picture.scaled is None or rect != picture.rect:
                picture.scaled = _scale(*picture.source, crop, rect)
                picture.rect = rect
            _blit(picture.scaled, rect, planes)
        elif decorated and tile.kind == "camera":
            _fill(box, VIDEO_BACKGROUND, planes)
        if not decorated:
            return
        if tile.speaking and tile.kind != "share":
            self._ring_around(box, planes)
        inset = int(4 * self.scale)
        name = f"{tile.name}\u2019s screen" if tile.kind == "share" else tile.name
        label = name_label(name, tile.mic_muted and tile.kind != "share", self.scale, box.w - 2 * inset)
        label.blend_into(*planes, box.x + inset, box.y + box.h - inset - label.height)

    def _ring_around(self, box: Rect, planes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        t = self._ring
        for edge in (Rect(box.x, box.y, box.w, t), Rect(box.x, box.y + box.h - t, box.w, t),
                     Rect(box.x, box.y, t, box.h), Rect(box.x + box.w - t, box.y, t, box.h)):
            _fill(edge, self._ring_yuv, planes)


def _fill(r: Rect, yuv: tuple[int, int, int], planes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    y_plane, u_plane, v_plane = planes
    y_plane[r.y: r.y + r.h, r.x: r.x + r.w] = yuv[0]
    u_plane[r.y // 2: (r.y + r.h) // 2, r.x // 2: (r.x + r.w) // 2] = yuv[1]
    v_plane[r.y // 2: (r.y + r.h) // 2, r.x // 2: (r.x + r.w) // 2] = yuv[2]


def _scale(buf, src_w: int, src_h: int, crop: Rect, r: Rect) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y, U, V planes of the ``crop`` of the source at the tile's size: views of the source buffer
    when it already fits (no copy, the common case of a 2x2 grid of 360p), else libswscale, bilinear
    (measured: 0.43 ms for 360p → 720p against 1.9 ms with PyAV's default bicubic)."""
    whole = (crop.x, crop.y, crop.w, crop.h) == (0, 0, src_w, src_h)
    if whole and (src_w, src_h) == (r.w, r.h):
        return i420_planes(buf, src_w, src_h)
    if whole:
        frame = i420_to_av(buf, src_w, src_h)
    else:
        y, u, v = i420_planes(buf, src_w, src_h)
        cx, cy = crop.x // 2, crop.y // 2
        planes = (y[crop.y: crop.y + crop.h, crop.x: crop.x + crop.w],
                  u[cy: cy + crop.h // 2, cx: cx + crop.w // 2], v[cy: cy + crop.h // 2, cx: cx + crop.w // 2])
        frame = av.VideoFrame.from_ndarray(np.concatenate([p.ravel() for p in planes]).reshape(-1, crop.w),
                                           format="yuv420p")
    scaled = frame.reformat(width=r.w, height=r.h, format="yuv420p", interpolation="BILINEAR").to_ndarray()
    u, v = scaled[r.h:].reshape(2, r.h // 2, r.w // 2)
    return scaled[: r.h], u, v


def _blit(picture: tuple[np.ndarray, np.ndarray, np.ndarray], r: Rect,
          planes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """Copy Y, U, V planes of ``r``'s size to ``r`` on the canvas."""
    for src, dst, k in zip(picture, planes, (1, 2, 2)):
        dst[r.y // k: (r.y + r.h) // k, r.x // k: (r.x + r.w) // k] = src
