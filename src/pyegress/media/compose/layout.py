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


def grid_rects(n: int, width: int, height: int, gap: int = 0) -> list[Rect]:
    """Tiles for ``n`` participants on a ``width`` x ``height`` canvas, row-major.

    The grid has ``ceil(sqrt(n))`` columns and as many rows as needed; a last,
    partial row is centred horizontally.
    """
    if n <= 0:
        return []
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    tw, th = _even((width - gap * (cols - 1)) / cols), _even((height - gap * (rows - 1)) / rows)
    rects = []
    for i in range(n):
        r, c = divmod(i, cols)
        in_row = min(cols, n - r * cols)
        x0 = _even((width - (in_row * tw + (in_row - 1) * gap)) / 2)
        rects.append(Rect(x0 + c * (tw + gap), _even(r * (th + gap) + (height - rows * th - (rows - 1) * gap) / 2), tw, th))
    return rects


def fit(src_w: int, src_h: int, box: Rect) -> Rect:
    """The largest rectangle with the source's aspect ratio centred inside ``box`` (letterbox)."""
    scale = min(box.w / src_w, box.h / src_h)
    w, h = max(2, _even(src_w * scale)), max(2, _even(src_h * scale))
    return Rect(box.x + _even((box.w - w) / 2), box.y + _even((box.h - h) / 2), w, h)


def tile_rects(layout: Layout, n: int, width: int, height: int, speaker_index: int | None) -> list[Rect | None]:
    """Rectangles for ``n`` tiles in ``layout``; ``None`` for a tile that is not shown.

    ``speaker_index`` is the tile of the active speaker (or ``None``); the
    ``speaker`` layout shows it large with the others in a strip on the right,
    ``single-speaker`` shows it alone.
    """
    if n == 0:
        return []
    if layout.kind == "grid" or n == 1:
        return list(grid_rects(n, width, height))
    main = speaker_index if speaker_index is not None and 0 <= speaker_index < n else 0
    if layout.kind == "single-speaker":
        return [Rect(0, 0, width, height) if i == main else None for i in range(n)]
    strip_w = _even(width / 5)
    others = [i for i in range(n) if i != main]
    cell_h = _even(min(height / len(others), strip_w * 9 / 16))
    y0 = _even((height - cell_h * len(others)) / 2)
    rects: list[Rect | None] = [None] * n
    rects[main] = Rect(0, 0, width - strip_w, height)
    for k, i in enumerate(others):
        rects[i] = Rect(width - strip_w, y0 + k * cell_h, strip_w, cell_h)
    return rects
