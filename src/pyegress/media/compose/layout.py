"""Layout geometry for room composites.

LiveKit's layout names are accepted: ``grid``, ``speaker``, ``single-speaker``,
each optionally suffixed ``-light`` or ``-dark`` (background colour). This module
only computes rectangles; it never touches pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ...contract.layouts import Layout


@dataclass(frozen=True)
class Rect:
    """A rectangle on the canvas in pixels; all values are even so I420 chroma planes align."""

    x: int
    y: int
    w: int
    h: int


def _even(v: float) -> int:
    return int(v) & ~1


#: LiveKit's grid layouts (``GRID_LAYOUTS`` of @livekit/components-core, which its room composite template
#: lays out with; docs/layouts.md): (columns, most tiles, least canvas width in px, canvas orientation it is
#: for, None: any).
GRID_LAYOUTS = ((1, 1, 0, None), (1, 2, 0, "portrait"), (2, 2, 0, "landscape"), (2, 4, 560, None),
                (3, 9, 700, None), (4, 16, 960, None), (5, 25, 1100, None))


def grid_layout(n: int, width: int, height: int) -> tuple[int, int]:
    """``(columns, most tiles)`` of the grid LiveKit chooses for ``n`` tiles on a ``width`` x ``height``
    canvas: the smallest layout that holds them, the one for the canvas's orientation where two hold as
    many (a square canvas counts as portrait), a smaller one where the canvas is too narrow for it."""
    orientation = "landscape" if width > height else "portrait"

    def pick(n: int, count: int) -> int:
        for i in range(count):
            most = GRID_LAYOUTS[i][1]
            if most >= n and not any(GRID_LAYOUTS[j][1] == most and GRID_LAYOUTS[j][3] in (None, orientation)
                                     for j in range(i + 1, count)):
                break
        else:
            i = count - 1
        if i > 0 and width < GRID_LAYOUTS[i][2]:
            return pick(GRID_LAYOUTS[i - 1][1], i)
        return i

    columns, most, _, _ = GRID_LAYOUTS[pick(n, len(GRID_LAYOUTS))]
    return columns, most


def _span(i: int, count: int, length: int) -> tuple[int, int]:
    """Start and length (even px) of cell ``i`` of ``count`` equal cells over ``length`` px, abutting."""
    a, b = _even(i * length / count), _even((i + 1) * length / count) if i + 1 < count else length
    return a, b - a


def grid_rects(n: int, width: int, height: int) -> list[Rect | None]:
    """Tiles for ``n`` participants on a ``width`` x ``height`` canvas, as LiveKit's template lays them out:
    the columns of :func:`grid_layout`, as many rows as the tiles fill, cells edge to edge, row-major, a
    last partial row left-aligned; tiles past the layout's most (LiveKit's later pages) are None."""
    if n <= 0:
        return []
    columns, most = grid_layout(n, width, height)
    shown = min(n, most)
    rows = math.ceil(shown / columns)
    rects: list[Rect | None] = []
    for i in range(n):
        if i >= shown:
            rects.append(None)
            continue
        r, c = divmod(i, columns)
        (x, w), (y, h) = _span(c, columns, width), _span(r, rows, height)
        rects.append(Rect(x, y, w, h))
    return rects


def fit(src_w: int, src_h: int, box: Rect) -> Rect:
    """The largest rectangle with the source's aspect ratio centred inside ``box`` (letterbox)."""
    scale = min(box.w / src_w, box.h / src_h)
    w, h = max(2, _even(src_w * scale)), max(2, _even(src_h * scale))
    return Rect(box.x + _even((box.w - w) / 2), box.y + _even((box.h - h) / 2), w, h)


def cover(src_w: int, src_h: int, box: Rect) -> Rect:
    """The part of a ``src_w`` x ``src_h`` picture that fills ``box`` when scaled to it (CSS ``object-fit:
    cover``: the middle, cropped to the box's aspect ratio), in the picture's pixels, even-aligned."""
    scale = max(box.w / src_w, box.h / src_h)
    w, h = min(src_w & ~1, max(2, _even(box.w / scale))), min(src_h & ~1, max(2, _even(box.h / scale)))
    return Rect(_even((src_w - w) / 2), _even((src_h - h) / 2), w, h)


#: Carousel tiles of LiveKit's speaker layout are 16:10 (its template leaves their size to CSS aspect-ratio)
CAROUSEL_ASPECT = 1.6
#: At most this canvas width (px) the speaker layout's carousel runs along the bottom (a CSS media query)
NARROW_WIDTH = 600


#: What LiveKit's carousel counts a tile as at least (px: height of a tile down the side, width of one along
#: the bottom) and the scrollbar it leaves room for, when it works out how many tiles it shows
#: (@livekit/components-react ``CarouselLayout``)
CAROUSEL_MIN_TILE_PX = (130, 140)
SCROLLBAR_PX = 15


def carousel_capacity(width: int, height: int) -> int:
    """How many tiles the speaker layout's carousel counts as visible on a ``width`` x ``height`` canvas
    (LiveKit's ``maxVisibleTiles``): the page size that keeps carousel tiles in place (:func:`~.roster.update_pages`)."""
    if width <= NARROW_WIDTH:
        span = max(height / 6 * CAROUSEL_ASPECT, CAROUSEL_MIN_TILE_PX[1])
        fits = (width - SCROLLBAR_PX) / span
    else:
        span = max(width / 6 * (CAROUSEL_ASPECT - 1), CAROUSEL_MIN_TILE_PX[0])  # LiveKit's 0.6, not 1/1.6
        fits = (height - SCROLLBAR_PX) / span
    return max(1, int(max(fits, 1.0) + 0.5))


def tile_rects(layout: Layout, n: int, width: int, height: int, speaker_index: int | None) -> list[Rect | None]:
    """Rectangles for ``n`` tiles in ``layout`` as LiveKit's template places them; ``None`` for a tile
    that is not shown.

    ``speaker_index`` is the tile on the stage (or ``None``: the first). ``speaker`` puts it on the
    right 5/6 of the canvas at full height and the others in a carousel down the left sixth, 16:10
    tiles from the top (along the bottom sixth on a canvas at most :data:`NARROW_WIDTH` wide); a
    carousel tile that would not fit whole is not shown (LiveKit scrolls and clips it). Alone, a tile
    fills the canvas. ``single-speaker`` shows only the stage, on the whole canvas.
    """
    if n == 0:
        return []
    if layout.kind == "grid":
        return grid_rects(n, width, height)
    main = speaker_index if speaker_index is not None and 0 <= speaker_index < n else 0
    rects: list[Rect | None] = [None] * n
    if layout.kind == "single-speaker" or n == 1:
        rects[main] = Rect(0, 0, width, height)
        return rects
    others = [i for i in range(n) if i != main]
    if width <= NARROW_WIDTH:
        strip = _even(height / 6)
        rects[main] = Rect(0, 0, width, height - strip)
        tile_w = _even(strip * CAROUSEL_ASPECT)
        for k, i in enumerate(others):
            if (k + 1) * tile_w <= width:
                rects[i] = Rect(k * tile_w, height - strip, tile_w, strip)
        return rects
    strip = _even(width / 6)
    rects[main] = Rect(strip, 0, width - strip, height)
    tile_h = _even(strip / CAROUSEL_ASPECT)
    for k, i in enumerate(others):
        if (k + 1) * tile_h <= height:
            rects[i] = Rect(0, k * tile_h, strip, tile_h)
    return rects
