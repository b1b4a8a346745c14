"""Participant-tile decorations for room composites: name labels and placeholders, in I420.

A composite draws on yuv420p planes (see :mod:`.video`), so every decoration here
is rendered once with Pillow, converted once to BT.601 limited-range planes (the
colours of :data:`~...contract.layouts.BACKGROUNDS`) and cached; a frame only
pays for a numpy alpha blend (:meth:`Overlay.blend_into`) or a slice copy.

Style rules follow LiveKit components-styles: the participant metadata item
(padding 4 px, background rgba(0, 0, 0, 0.5), text 14 px #ffffff, a 16 px
muted-microphone icon before the name) and the participant placeholder (a
rgb(64, 64, 64) silhouette on black). Sizes are CSS px at 720p; callers pass
``scale`` (about canvas height / 720, at least 1).

Text is shaped with Pillow's raqm layout (HarfBuzz + FriBiDi) over a chain of
Debian's fonts, since one font covers no name of every script: a name is cut
into grapheme clusters, each goes to the first font of :data:`FONTS` that has
all its characters, and runs of one font and one bidi level are shaped and
drawn in visual order.
"""

from __future__ import annotations

import hashlib
import math
import os
import unicodedata
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np
import regex
from PIL import Image, ImageDraw, ImageFont, features

ELLIPSIS = "\u2026"

#: Name-label style (LiveKit components-styles: participant metadata), CSS px before ``scale``.
LABEL_PADDING_PX = 4
LABEL_RADIUS_PX = 4  # half of components-styles' --lk-border-radius (0.5rem)
LABEL_TEXT_PX = 14
LABEL_ICON_PX = 16
LABEL_GAP_PX = 4  # between the icon and the name
LABEL_BACKGROUND = (0, 0, 0, 128)  # rgba(0, 0, 0, 0.5)
LABEL_TEXT_COLOR = (255, 255, 255, 255)
MUTED_ICON_COLOR = (0xF9, 0x1F, 0x31, 255)

#: Participant placeholder (camera off): silhouette colour on black.
SILHOUETTE_COLOR = (64, 64, 64)
#: Audio-only tiles: background (dark, light), initials colour, and the circle palette (muted colours).
AUDIO_BACKGROUNDS = {True: (30, 30, 30), False: (235, 235, 235)}
INITIALS_COLOR = (255, 255, 255)
AVATAR_PALETTE = ((0x5B, 0x6C, 0x8F), (0x4E, 0x7D, 0x6E), (0x8F, 0x62, 0x52), (0x74, 0x62, 0x8F),
                  (0x8A, 0x7A, 0x4C), (0x4F, 0x7E, 0x8C), (0x8C, 0x56, 0x6E), (0x66, 0x75, 0x52))


class LabelsUnavailable(RuntimeError):
    """A font file or the raqm text layout that labels need is missing; the message names the Debian package
    that provides it (``scripts/setup`` installs them all)."""


@dataclass(frozen=True)
class FontFile:
    """A font of the fallback chain: its file, the Debian package that ships it, and the size its glyphs
    exist at (``bitmap_px``: a bitmap font, drawn at that size and scaled; None: an outline font)."""

    name: str
    path: str
    package: str
    bitmap_px: int | None = None


_NOTO = "/usr/share/fonts/truetype/noto"
#: The fallback chain, in order of preference. Emoji are tried first for emoji-presentation clusters.
FONTS = (
    FontFile("latin", f"{_NOTO}/NotoSans-Regular.ttf", "fonts-noto-core"),  # Latin, Cyrillic, Greek
    FontFile("arabic", f"{_NOTO}/NotoSansArabic-Regular.ttf", "fonts-noto-core"),
    FontFile("hebrew", f"{_NOTO}/NotoSansHebrew-Regular.ttf", "fonts-noto-core"),
    FontFile("cjk", "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", "fonts-noto-cjk"),
    FontFile("emoji", f"{_NOTO}/NotoColorEmoji.ttf", "fonts-noto-color-emoji", bitmap_px=109),
    FontFile("last", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "fonts-dejavu-core"),
)
_BY_NAME = {f.name: f for f in FONTS}
# faces of NotoSansCJK-Regular.ttc: Japanese, Korean and Simplified Chinese glyph forms differ for shared ideographs
_CJK_FACE = {"ja": 0, "ko": 1, "zh": 2}


def check_available() -> None:
    """Raise :class:`LabelsUnavailable` unless raqm and every font of :data:`FONTS` are installed."""
    if not features.check("raqm"):
        raise LabelsUnavailable("Pillow's raqm text layout is unavailable: install the Debian packages "
                                "libraqm0 libfribidi0 libharfbuzz0b")
    for font in FONTS:
        if not os.path.isfile(font.path):
            raise LabelsUnavailable(f"font {font.path} is missing: install the Debian package {font.package}")


@cache
def _coverage(name: str) -> frozenset[int]:
    """The code points the font ``name`` has glyphs for (its cmap)."""
    from fontTools.ttLib import TTCollection, TTFont

    check_available()
    path = _BY_NAME[name].path
    if path.endswith(".ttc"):
        # the faces of the CJK collection share their cmap coverage
        return frozenset(TTCollection(path, lazy=True).fonts[2].getBestCmap())
    return frozenset(TTFont(path, lazy=True).getBestCmap())


@lru_cache(maxsize=64)
def _font(name: str, px: int, face: int = 0) -> ImageFont.FreeTypeFont:
    check_available()
    spec = _BY_NAME[name]
    return ImageFont.truetype(spec.path, spec.bitmap_px or px, index=face, layout_engine=ImageFont.Layout.RAQM)


# Characters that never need a glyph of their own: joiners, variation selectors, bidi controls, tags.
_IGNORABLE = frozenset([0x200C, 0x200D, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A),
                        *range(0xFE00, 0xFE10), *range(0xE0020, 0xE0080)])


def _is_emoji(cluster: str) -> bool:
    """Whether a grapheme cluster asks for an emoji picture: VS16, a keycap, or a pictograph of the
    supplementary planes (flags, faces, ZWJ sequences) -- rather than a text-style symbol."""
    return "\ufe0f" in cluster or "\u20e3" in cluster or ord(cluster[0]) >= 0x1F000


def _font_for(cluster: str, previous: str | None) -> str:
    """The font of the chain that draws ``cluster``: the previous cluster's font for spaces and punctuation
    it has (so an Arabic name's space does not break its run), else the first font that has every character."""
    cps = [ord(c) for c in cluster if ord(c) not in _IGNORABLE] or [ord(cluster[0])]
    if previous not in (None, "emoji") and unicodedata.category(cluster[0])[0] not in "LMN" \
            and not _is_emoji(cluster) and all(cp in _coverage(previous) for cp in cps):
        return previous
    order = [f.name for f in FONTS]
    if _is_emoji(cluster):
        order.remove("emoji")
        order.insert(0, "emoji")
    for name in order:
        if all(cp in _coverage(name) for cp in cps):
            return name
    return "last"  # covered by none: the last resort's missing-glyph box says so honestly


def _clean(name: str) -> str:
    """``name`` as one line of drawable text: surrogate pairs joined, lone surrogates and controls replaced."""
    name = name.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    name = "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in name)
    return unicodedata.normalize("NFC", " ".join(name.split()))


def graphemes(text: str) -> list[str]:
    """``text`` cut into extended grapheme clusters (Unicode UAX #29): the units a cut may fall between."""
    return regex.findall(r"\X", text)


# ---- bidi: the implicit rules of the Unicode Bidirectional Algorithm (UAX #9), for one line without explicit
# embeddings, which is what a participant name is (explicit controls are dropped from it).

def _bidi_levels(clusters: list[str]) -> tuple[list[int], int]:
    """``(levels, paragraph level)``: the embedding level of each grapheme cluster, classed by its first
    character; the paragraph level comes from the first strong character (as HTML's ``dir=auto``)."""
    classes = [unicodedata.bidirectional(c[0]) or "ON" for c in clusters]
    strong = next((c for c in classes if c in ("L", "R", "AL")), "L")
    para = 0 if strong == "L" else 1
    # W2, W3, W7: European numbers after Arabic letters are Arabic numbers; AL is R; after L, EN is L
    last, resolved = ("L" if para == 0 else "R"), []
    for c in classes:
        if c in ("L", "R", "AL"):
            last = c
        if c == "EN" and last == "AL":
            c = "AN"
        elif c == "EN" and last == "L":
            c = "L"
        resolved.append("R" if c == "AL" else c)
    # N1, N2: neutrals between two strong sides of one direction take it (numbers count as R), else the paragraph's
    strongish = {"L": "L", "R": "R", "EN": "R", "AN": "R"}
    n, out = len(resolved), list(resolved)
    i = 0
    while i < n:
        if resolved[i] in strongish:
            i += 1
            continue
        j = i
        while j < n and resolved[j] not in strongish:
            j += 1
        before = strongish[resolved[i - 1]] if i > 0 else ("L" if para == 0 else "R")
        after = strongish[resolved[j]] if j < n else ("L" if para == 0 else "R")
        fill = before if before == after else ("L" if para == 0 else "R")
        out[i:j] = [fill] * (j - i)
        i = j
    # I1, I2: levels from the resolved types
    levels = []
    for c in out:
        if para % 2 == 0:
            levels.append(para + {"L": 0, "R": 1, "AN": 2, "EN": 2}[c])
        else:
            levels.append(para + {"L": 1, "R": 0, "AN": 1, "EN": 1}[c])
    return levels, para


@dataclass(frozen=True)
class _Run:
    text: str
    font: str
    rtl: bool
    width: float  # px at the line's size


@dataclass(frozen=True)
class _Line:
    """One line of text laid out in runs of one font and one direction, in visual (left-to-right) order."""

    runs: tuple[_Run, ...]
    px: int
    face: int

    @property
    def width(self) -> int:
        return math.ceil(sum(r.width for r in self.runs))


def _cjk_face(text: str) -> int:
    """The CJK collection's face for ``text``: Japanese with kana, Korean with Hangul, else Chinese."""
    if regex.search(r"[\p{Hiragana}\p{Katakana}]", text):
        return _CJK_FACE["ja"]
    if regex.search(r"\p{Hangul}", text):
        return _CJK_FACE["ko"]
    return _CJK_FACE["zh"]


def _run_width(text: str, font: str, rtl: bool, px: int, face: int) -> float:
    f = _font(font, px, face if font == "cjk" else 0)
    width = f.getlength(text, direction="rtl" if rtl else "ltr")
    spec = _BY_NAME[font]
    return width * px / spec.bitmap_px if spec.bitmap_px else width


def _layout(clusters: list[str], px: int, face: int) -> _Line:
    """Lay out grapheme clusters (in logical order) as one line at ``px`` px."""
    if not clusters:
        return _Line((), px, face)
    levels, _ = _bidi_levels(clusters)
    fonts, previous = [], None
    for c in clusters:
        previous = _font_for(c, previous)
        fonts.append(previous)
    # logical runs of one font and one level
    runs: list[tuple[int, str, list[str]]] = []
    for c, level, font in zip(clusters, levels, fonts):
        if runs and runs[-1][0] == level and runs[-1][1] == font:
            runs[-1][2].append(c)
        else:
            runs.append((level, font, [c]))
    # L2: reverse every sequence of runs at or above each level, from the highest down to the lowest odd one
    order = list(range(len(runs)))
    top, low = max(levels), min(lv for lv in levels if lv % 2) if any(lv % 2 for lv in levels) else None
    if low is not None:
        for level in range(top, low - 1, -1):
            i = 0
            while i < len(order):
                if runs[order[i]][0] >= level:
                    j = i
                    while j < len(order) and runs[order[j]][0] >= level:
                        j += 1
                    order[i:j] = order[i:j][::-1]
                    i = j
                else:
                    i += 1
    out = []
    for k in order:
        level, font, cs = runs[k]
        text = "".join(cs)
        out.append(_Run(text, font, level % 2 == 1, _run_width(text, font, level % 2 == 1, px, face)))
    return _Line(tuple(out), px, face)


def _draw_line(img: Image.Image, line: _Line, x: float, baseline: int, fill: tuple[int, int, int, int]) -> None:
    """Draw ``line`` onto the RGBA ``img`` with its left at ``x`` and its baseline at ``baseline`` (px)."""
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for run in line.runs:
        spec = _BY_NAME[run.font]
        font = _font(run.font, line.px, line.face if run.font == "cjk" else 0)
        direction = "rtl" if run.rtl else "ltr"
        if spec.bitmap_px:
            # a bitmap (colour emoji) font exists at one size: draw there, scale down to the line's
            k = line.px / spec.bitmap_px
            ascent, descent = font.getmetrics()
            big = Image.new("RGBA", (math.ceil(run.width / k) + 2, ascent + descent), (0, 0, 0, 0))
            ImageDraw.Draw(big).text((0, ascent), run.text, font=font, anchor="ls", embedded_color=True,
                                     direction=direction)
            small = big.resize((max(1, round(big.width * k)), max(1, round(big.height * k))), Image.LANCZOS)
            layer.alpha_composite(small, (round(x), baseline - round(ascent * k)))
        else:
            draw.text((x, baseline), run.text, font=font, fill=fill, anchor="ls", direction=direction)
        x += run.width
    img.alpha_composite(layer)


def _ellipsize(clusters: list[str], px: int, face: int, max_width: int) -> _Line:
    """The longest logical prefix of ``clusters`` that, with an ellipsis at its logical end, fits ``max_width``
    px; all of them when they fit as they are; the prefix is cut between grapheme clusters only."""
    line = _layout(clusters, px, face)
    if line.width <= max_width:
        return line
    # the ellipsis is bidi-neutral: at the logical end it takes the paragraph's direction (left of an RTL name)

    def fitting(n: int) -> _Line:
        head = clusters[:n]
        while head and head[-1].isspace():
            head = head[:-1]
        return _layout(head + [ELLIPSIS], px, face)

    lo, hi = 0, len(clusters) - 1  # lo: a count known to fit (or 0)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fitting(mid).width <= max_width:
            lo = mid
        else:
            hi = mid - 1
    best = fitting(lo)
    return best if best.width <= max_width else _Line((), px, face)


class Overlay:
    """An RGBA picture made ready to blend into I420 canvases: BT.601 limited-range planes, alpha-premultiplied.

    ``rgba``: the source ``(H, W, 4)`` uint8 picture (kept for previews and tests). Y is kept at full
    resolution with its alpha; U and V are 2x2 alpha-weighted averages, made lazily for each parity of
    the position (an odd x or y shifts which source pixels share a chroma sample).
    """

    def __init__(self, rgba: np.ndarray):
        if rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 4) uint8 RGBA array, got {rgba.shape} {rgba.dtype}")
        self.rgba = rgba
        self.rgba.setflags(write=False)
        self.height, self.width = rgba.shape[:2]
        alpha = rgba[..., 3].astype(np.uint32)
        y, u, v = _rgb_to_yuv(rgba[..., :3])
        self._alpha = alpha
        self._y = (y * alpha).astype(np.uint16)  # premultiplied, at most 255 * 255
        self._y_inv = (255 - alpha).astype(np.uint16)
        self._ua, self._va = u * alpha, v * alpha
        self._chroma: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    @classmethod
    def from_image(cls, img: Image.Image) -> Overlay:
        """An overlay of a Pillow image (converted to RGBA)."""
        return cls(np.array(img.convert("RGBA"), dtype=np.uint8))

    def _chroma_planes(self, px: int, py: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Premultiplied U, V and inverse alpha ``(ceil((H+py)/2), ceil((W+px)/2))`` uint16, for a position
        whose x and y parities are ``px``, ``py``: the picture padded by that many transparent columns/rows."""
        key = (px, py)
        if key not in self._chroma:
            h, w = self.height + py, self.width + px
            pad = ((py, h % 2), (px, w % 2))

            def sum4(a: np.ndarray) -> np.ndarray:
                a = np.pad(a, pad)
                return a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]

            alpha = (sum4(self._alpha) + 2) // 4
            self._chroma[key] = ((sum4(self._ua) + 2) // 4).astype(np.uint16), \
                ((sum4(self._va) + 2) // 4).astype(np.uint16), (255 - alpha).astype(np.uint16)
        return self._chroma[key]

    def blend_into(self, y_plane: np.ndarray, u_plane: np.ndarray, v_plane: np.ndarray, x: int, y: int) -> None:
        """Alpha-blend the overlay into I420 planes (Y ``(H, W)``, U and V ``(ceil(H/2), ceil(W/2))`` uint8,
        written in place) with its top-left corner at canvas pixel ``(x, y)``; whatever falls outside the
        canvas is clipped, any position works (negative, odd)."""
        _blend(y_plane, self._y, self._y_inv, x, y)
        px, py = x & 1, y & 1
        u, v, inv = self._chroma_planes(px, py)
        _blend(u_plane, u, inv, (x - px) // 2, (y - py) // 2)
        _blend(v_plane, v, inv, (x - px) // 2, (y - py) // 2)


def _blend(dst: np.ndarray, premul: np.ndarray, inv: np.ndarray, x: int, y: int) -> None:
    """``dst = (src * a + dst * (255 - a)) / 255`` over the part of ``premul`` placed at ``(x, y)`` inside ``dst``;
    uint16 is enough: ``src * a + dst * (255 - a) + 127 <= 65152``."""
    h, w = premul.shape
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, dst.shape[1]), min(y + h, dst.shape[0])
    if x0 >= x1 or y0 >= y1:
        return
    src = (slice(y0 - y, y1 - y), slice(x0 - x, x1 - x))
    region = dst[y0:y1, x0:x1]
    region[...] = (premul[src] + region.astype(np.uint16) * inv[src] + 127) // 255


def _rgb_to_yuv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y, U, V ``(H, W)`` uint32 of an ``(H, W, 3)`` RGB array: BT.601 limited range in 8-bit integer math."""
    r, g, b = (rgb[..., i].astype(np.int32) for i in range(3))
    y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
    u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128
    v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128
    return y.astype(np.uint32), u.astype(np.uint32), v.astype(np.uint32)


def rgb_to_i420(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """I420 planes of an opaque ``(H, W, 3)`` uint8 RGB picture: Y ``(H, W)``, U and V ``(ceil(H/2),
    ceil(W/2))`` uint8 (2x2 averages), BT.601 limited range; read-only, as they may be shared."""
    y, u, v = _rgb_to_yuv(rgb)
    h, w = y.shape
    pad = ((0, h % 2), (0, w % 2))

    def half(a: np.ndarray) -> np.ndarray:
        a = np.pad(a, pad, mode="edge")
        return ((a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2] + 2) // 4).astype(np.uint8)

    planes = (y.astype(np.uint8), half(u), half(v))
    for p in planes:
        p.setflags(write=False)
    return planes


def _supersampled(w: int, h: int, draw, k: int = 4) -> np.ndarray:
    """Coverage ``(h, w)`` float32 in 0..1 of shapes that ``draw(ImageDraw, k)`` paints in 255 on a ``k``-times
    larger mask: antialiasing by drawing big and averaging down."""
    mask = Image.new("L", (w * k, h * k), 0)
    draw(ImageDraw.Draw(mask), k)
    return np.asarray(mask.reduce(k), dtype=np.float32) / 255


def _mic_muted_icon(px: int, color: tuple[int, int, int, int]) -> Image.Image:
    """A ``px`` x ``px`` RGBA muted-microphone icon: a capsule on a stand, struck through by a diagonal."""
    def paint(d: ImageDraw.ImageDraw, k: int) -> None:
        s = px * k / 16  # drawn in a 16 x 16 box
        lw = max(1, round(1.5 * s))
        d.rounded_rectangle((5.5 * s, 1 * s, 10.5 * s, 10 * s), radius=2.5 * s, fill=255)  # capsule
        d.arc((3 * s, 3.5 * s, 13 * s, 12.5 * s), 0, 180, fill=255, width=lw)  # holder
        d.line((8 * s, 12.5 * s, 8 * s, 14.5 * s), fill=255, width=lw)  # stem
        d.line((5 * s, 14.75 * s, 11 * s, 14.75 * s), fill=255, width=lw)  # base
        # the strike: a transparent gap along it keeps it readable over the capsule
        d.line((1.5 * s, 1.5 * s, 14.5 * s, 14.5 * s), fill=0, width=lw * 3)
        d.line((1.5 * s, 1.5 * s, 14.5 * s, 14.5 * s), fill=255, width=lw)

    coverage = _supersampled(px, px, paint)
    icon = np.zeros((px, px, 4), dtype=np.uint8)
    icon[..., :3] = color[:3]
    icon[..., 3] = np.round(coverage * color[3]).astype(np.uint8)
    return Image.fromarray(icon, "RGBA")


@lru_cache(maxsize=512)
def name_label(name: str, muted: bool, scale: float = 1.0, max_width: int = 1 << 30) -> Overlay:
    """The name label of a participant tile as an :class:`Overlay`, cached by its arguments.

    Style from LiveKit components-styles (participant metadata item): padding 4 px, background
    rgba(0, 0, 0, 0.5) with 4 px corners, the name in 14 px white, and when ``muted`` a 16 px
    microphone struck through in #f91f31 left of it, 4 px apart; every size times ``scale`` (about
    canvas height / 720, at least 1). The label is at most ``max_width`` px wide: a longer name is cut
    between grapheme clusters and ends with "…" at its logical end (the left of a right-to-left name).
    Raises :class:`LabelsUnavailable` when raqm or a font is not installed.
    """
    check_available()
    pad, px = round(LABEL_PADDING_PX * scale), round(LABEL_TEXT_PX * scale)
    icon_px, gap = round(LABEL_ICON_PX * scale), round(LABEL_GAP_PX * scale)
    lead = icon_px + gap if muted else 0
    text = _clean(name)
    clusters = graphemes(text)
    face = _cjk_face(text)
    line = _ellipsize(clusters, px, face, max(0, max_width - 2 * pad - lead))
    if not line.runs and lead:
        lead = icon_px  # no room for any text: the icon alone, without its gap
    ascent, descent = _font("latin", px).getmetrics()
    inner_h = max(ascent + descent, icon_px if muted else 0)
    width, height = 2 * pad + lead + line.width, 2 * pad + inner_h
    img = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    ImageDraw.Draw(img).rounded_rectangle((0, 0, width - 1, height - 1), radius=round(LABEL_RADIUS_PX * scale),
                                          fill=LABEL_BACKGROUND)
    if muted:
        img.alpha_composite(_mic_muted_icon(icon_px, MUTED_ICON_COLOR), (pad, pad + (inner_h - icon_px) // 2))
    # the line box centred vertically, as CSS align-items: center does
    _draw_line(img, line, pad + lead, pad + (inner_h - ascent - descent) // 2 + ascent, LABEL_TEXT_COLOR)
    return Overlay(np.array(img, dtype=np.uint8))


@lru_cache(maxsize=64)
def camera_off_placeholder(w: int, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """I420 planes of a ``w`` x ``h`` px tile whose participant has no camera (LiveKit's participant
    placeholder): black, with a rgb(64, 64, 64) silhouette in a square of side ``min(h, 0.8 * w)`` px
    centred in the tile. Y ``(h, w)``, U and V ``(ceil(h/2), ceil(w/2))`` uint8, read-only, cached."""
    side = min(h, 0.8 * w)
    ox, oy = (w - side) / 2, (h - side) / 2

    def paint(d: ImageDraw.ImageDraw, k: int) -> None:
        # the silhouette's 320 x 320 box: head a circle at (160, 100) r 80; shoulders 21..299 x 192..320
        def p(x: float, y: float) -> tuple[float, float]:
            return (ox + x * side / 320) * k, (oy + y * side / 320) * k

        d.ellipse((*p(80, 20), *p(240, 180)), fill=255)
        r = side / 320 * k
        d.rounded_rectangle((*p(21, 192), *p(299, 300)), radius=round(80 * r), fill=255,
                            corners=(True, True, False, False))  # round shoulders
        d.rounded_rectangle((*p(21, 240), *p(299, 320)), radius=round(20 * r), fill=255,
                            corners=(False, False, True, True))

    coverage = _supersampled(w, h, paint)
    rgb = np.round(coverage[..., None] * np.array(SILHOUETTE_COLOR, dtype=np.float32)).astype(np.uint8)
    return rgb_to_i420(rgb)


def initials(name: str) -> str:
    """The first grapheme cluster of the first two words of ``name``, uppercased where that keeps it one
    character (so "ß" stays "ß"): "Ada Lovelace" → "AL", "王小明" → "王", "😀 Bob" → "😀B"."""
    out = []
    for word in _clean(name).split()[:2]:
        g = graphemes(word)[0]
        up = g.upper()
        out.append(up if len(up) == len(g) else g)
    return "".join(out)


def avatar_color(name: str) -> tuple[int, int, int]:
    """The circle colour of ``name``'s audio-only tile: one of :data:`AVATAR_PALETTE`, chosen by a hash of
    the name that is the same in every process (not Python's salted ``hash()``)."""
    digest = hashlib.blake2s(_clean(name).encode("utf-8"), digest_size=4).digest()
    return AVATAR_PALETTE[int.from_bytes(digest, "big") % len(AVATAR_PALETTE)]


@lru_cache(maxsize=64)
def audio_only_placeholder(w: int, h: int, name: str, dark: bool = True) -> tuple[np.ndarray, np.ndarray,
                                                                                      np.ndarray]:
    """I420 planes of a ``w`` x ``h`` px tile for a participant who publishes no video: a rgb(30, 30, 30)
    (``dark``) or rgb(235, 235, 235) background and a circle of diameter ``0.4 * min(w, h)`` px in
    :func:`avatar_color` with the :func:`initials` in white. Y ``(h, w)``, U and V ``(ceil(h/2),
    ceil(w/2))`` uint8, read-only, cached."""
    check_available()
    img = Image.new("RGBA", (w, h), (*AUDIO_BACKGROUNDS[dark], 255))
    d = round(0.4 * min(w, h))
    cx, cy = w / 2, h / 2

    def paint(draw: ImageDraw.ImageDraw, k: int) -> None:
        draw.ellipse(((cx - d / 2) * k, (cy - d / 2) * k, (cx + d / 2) * k, (cy + d / 2) * k), fill=255)

    disc = np.zeros((h, w, 4), dtype=np.uint8)
    disc[..., :3] = avatar_color(name)
    disc[..., 3] = np.round(_supersampled(w, h, paint) * 255).astype(np.uint8)
    img.alpha_composite(Image.fromarray(disc, "RGBA"))
    text = initials(name)
    if text and d >= 4:
        px = max(1, round(d * 0.4))
        # a zero-width non-joiner between the letters: initials are separate letters, never an Arabic join
        line = _layout(graphemes("\u200c".join(graphemes(text))), px, _cjk_face(text))
        layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
        _draw_line(layer, line, 0, h // 2, (*INITIALS_COLOR, 255))
        box = layer.getbbox()
        if box:  # centre the ink, not the line box: initials have no descenders to balance
            ink = layer.crop(box)
            img.alpha_composite(ink, (round(cx - ink.width / 2), round(cy - ink.height / 2)))
    return rgb_to_i420(np.asarray(img.convert("RGB")))
