"""The generated publishers' pictures and sounds, known exactly so a recording can be checked against
them: per participant a colour (:func:`participant_colour`) and a tone (:func:`tone_hz`), a sweeping bar
and a frame counter in the picture (:class:`VideoPattern`), a beep at the start of every second in the
sound (:class:`AudioPattern`). See :mod:`pyegress.devtools.publisher` for how they are published."""

from __future__ import annotations

import math

import numpy as np
from livekit import rtc

AUDIO_SAMPLE_RATE = 48_000
"""Audio sample rate in Hz (mono)."""
AUDIO_FRAME_SAMPLES = AUDIO_SAMPLE_RATE // 100
"""Samples per 10 ms audio frame."""
TONE_AMPLITUDE = 0.25
"""Peak of the continuous tone, as a fraction of int16 full scale."""
BEEP_HZ = 1000.0
BEEP_S = 0.1
BEEP_AMPLITUDE = 0.7
"""Peak of the beep at the start of every second, as a fraction of int16 full scale."""
BAR_PERIOD_S = 2.0
"""Seconds for the bar to sweep once across the picture."""
COUNTER_DIGITS = 6
SHARE_SIZE = (1920, 1200)
"""The screen a share shows (px): 16:10, so it is letterboxed on a 16:9 stage."""

_BG_LUMA = 110
_CHROMA_RADIUS = 48  # distance of every participant colour from grey in the U/V plane; in gamut at Y=110
_GOLDEN_ANGLE = 137.50776405003785
_BAR_LUMA = 235
_TEXT_LUMA = 235
_BOX_LUMA = 16

# 5x7 bitmap digits, one string of 7 rows of 5 columns each.
_FONT = {
    "0": ("01110", "10001", "10011", "10101", "11001", "10001", "01110"),
    "1": ("00100", "01100", "00100", "00100", "00100", "00100", "01110"),
    "2": ("01110", "10001", "00001", "00010", "00100", "01000", "11111"),
    "3": ("11111", "00010", "00100", "00010", "00001", "10001", "01110"),
    "4": ("00010", "00110", "01010", "10010", "11111", "00010", "00010"),
    "5": ("11111", "10000", "11110", "00001", "00001", "10001", "01110"),
    "6": ("00110", "01000", "10000", "11110", "10001", "10001", "01110"),
    "7": ("11111", "00001", "00010", "00100", "01000", "01000", "01000"),
    "8": ("01110", "10001", "10001", "01110", "10001", "10001", "01110"),
    "9": ("01110", "10001", "10001", "01111", "00001", "00010", "01100"),
}


def participant_colour(index: int) -> tuple[int, int, int]:
    """The background colour of participant ``index`` as BT.601 limited-range ``(Y, U, V)``, each 0..255.

    Colours sit on a circle of radius 48 around grey in the U/V plane, stepped by
    the golden angle, so any few participants are far apart (3: >= 75, 8: >= 26
    U/V units) and every colour is inside the RGB gamut.

    Raises:
        ValueError: ``index`` is negative.
    """
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    angle = math.radians(110.0 + index * _GOLDEN_ANGLE)  # index 0 red, 1 green, 2 blue-violet
    u = round(128 + _CHROMA_RADIUS * math.cos(angle))
    v = round(128 + _CHROMA_RADIUS * math.sin(angle))
    return _BG_LUMA, u, v


def tone_hz(index: int) -> float:
    """The frequency in Hz of participant ``index``'s continuous tone: ``300 + 100 * index``.

    Raises:
        ValueError: ``index`` is negative.
    """
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    return 300.0 + 100.0 * index


class VideoPattern:
    """Renders the generated picture of one participant into one reused I420 buffer.

    ``buffer`` is a tightly packed I420 ``bytearray``: Y ``(height, width)``, then U and V
    ``(ceil(height/2), ceil(width/2))``. Chroma is written once (the participant's colour);
    :meth:`render` rewrites only the Y plane: background, the sweeping bar, the counter.
    ``frame`` is the ``rtc.VideoFrame`` over ``buffer`` (the SDK copies it on capture).

    Raises:
        ValueError: ``width``, ``height`` or ``fps`` is not positive, or ``index`` is negative.
    """

    def __init__(self, width: int, height: int, fps: int, index: int) -> None:
        if width <= 0 or height <= 0 or fps <= 0:
            raise ValueError(f"width, height and fps must be positive, got {width}x{height} at {fps} fps")
        self.width, self.height, self.fps, self.index = width, height, fps, index
        self.colour = participant_colour(index)
        cw, ch = (width + 1) // 2, (height + 1) // 2
        self.buffer = bytearray(width * height + 2 * cw * ch)
        flat = np.frombuffer(self.buffer, dtype=np.uint8)
        self.y = flat[: width * height].reshape(height, width)
        flat[width * height: width * height + cw * ch] = self.colour[1]
        flat[width * height + cw * ch:] = self.colour[2]
        self.frame = rtc.VideoFrame(width, height, rtc.VideoBufferType.I420, self.buffer)

        self._bar_w = min(width, max(2, width // 40))
        self._bar_period = max(1, round(BAR_PERIOD_S * fps))  # frames per sweep

        # the counter: digit cells (glyph + 1-column gap) pre-rendered as luma tiles on a dark box
        s = max(1, min(height // 45, width // 80))  # 8 at 640x360, 16 at 1280x720
        self._scale = s
        self._margin = self._pad = s
        self._cell_w, self._cell_h = 6 * s, 7 * s
        self._digits = min(COUNTER_DIGITS, max(0, (width - self._margin - self._pad) // self._cell_w))
        if self._margin + 2 * self._pad + self._cell_h > height:
            self._digits = 0
        self._cells = np.empty((10, self._cell_h, self._cell_w), dtype=np.uint8)
        for d, rows in _FONT.items():
            glyph = np.array([[c == "1" for c in row] + [False] for row in rows])
            glyph = np.kron(glyph, np.ones((s, s), dtype=bool))
            self._cells[int(d)] = np.where(glyph, _TEXT_LUMA, _BOX_LUMA)
        # the last cell's gap column is the right padding
        box_w = self._pad + self._digits * self._cell_w
        box_h = self._cell_h + 2 * self._pad
        self._box = (slice(self._margin, self._margin + box_h), slice(self._margin, self._margin + box_w))
        self._modulus = 10 ** self._digits

    @property
    def counter_box(self) -> tuple[int, int, int, int]:
        """Where the counter is drawn: ``(x, y, w, h)`` in pixels; ``w == 0`` if the picture is too small."""
        if not self._digits:
            return 0, 0, 0, 0
        ys, xs = self._box
        return xs.start, ys.start, xs.stop - xs.start, ys.stop - ys.start

    def read_counter(self, y: np.ndarray) -> int | None:
        """The frame number shown by a decoded luma plane ``(height, width) uint8`` of this pattern's size
        (e.g. from a recording, after lossy coding), or None if a digit cannot be read.

        Each glyph pixel is sampled at the centre of its ``scale`` x ``scale`` block and the digit is the
        font glyph nearest in Hamming distance, at most 3 of 35 pixels off.
        """
        if not self._digits or y.shape != (self.height, self.width):
            return None
        s, top, left = self._scale, self._margin + self._pad, self._margin + self._pad
        centres = np.arange(s // 2, 7 * s, s), np.arange(s // 2, 5 * s, s)
        glyphs = self._cells[:, centres[0]][:, :, centres[1]] > (_TEXT_LUMA + _BOX_LUMA) // 2  # (10, 7, 5)
        value = 0
        for i in range(self._digits):
            x0 = left + i * self._cell_w
            cell = y[top: top + self._cell_h, x0: x0 + self._cell_w]
            bits = cell[centres[0]][:, centres[1]] > (_TEXT_LUMA + _BOX_LUMA) // 2
            distances = (glyphs != bits).sum(axis=(1, 2))
            digit = int(distances.argmin())
            if distances[digit] > 3:
                return None
            value = value * 10 + digit
        return value

    def bar_x(self, n: int) -> int:
        """The left edge in pixels of the bar in frame ``n``."""
        return (n % self._bar_period) * (self.width - self._bar_w) // self._bar_period

    def render(self, n: int) -> bytearray:
        """Draw frame number ``n`` (>= 0) into ``buffer`` and return it."""
        y = self.y
        y.fill(_BG_LUMA)
        x = self.bar_x(n)
        y[:, x: x + self._bar_w] = _BAR_LUMA
        if self._digits:
            y[self._box] = _BOX_LUMA
            top = left = self._margin + self._pad
            cells, w, h = self._cells, self._cell_w, self._cell_h
            for i, ch in enumerate(str(n % self._modulus).zfill(self._digits)):
                x0 = left + i * w
                y[top: top + h, x0: x0 + w] = cells[ord(ch) - 48]
        return self.buffer


class AudioPattern:
    """One second of participant ``index``'s audio, pre-rendered as 100 ten-millisecond ``rtc.AudioFrame``.

    The tone is a whole number of Hz, so the second repeats seamlessly: frame ``k``
    of the stream is ``frames[k % 100]``. ``samples`` is the ``(48000,) int16`` second:
    the tone, crossfaded (2 ms ramps) into a 1 kHz beep during its first 100 ms.

    Raises:
        ValueError: ``index`` is negative.
    """

    def __init__(self, index: int) -> None:
        self.tone_hz = tone_hz(index)
        sr = AUDIO_SAMPLE_RATE
        t = np.arange(sr) / sr
        tone = TONE_AMPLITUDE * np.sin(2 * np.pi * self.tone_hz * t)
        beep = BEEP_AMPLITUDE * np.sin(2 * np.pi * BEEP_HZ * t)
        ramp = int(0.002 * sr)
        env = np.zeros(sr)
        n_beep = int(BEEP_S * sr)
        env[:n_beep] = 1.0
        env[n_beep - ramp: n_beep] = 0.5 + 0.5 * np.cos(np.linspace(0, np.pi, ramp))
        env[:ramp] = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, ramp))
        self.samples = np.round((tone * (1 - env) + beep * env) * 32767).astype(np.int16)
        self.frames = [
            rtc.AudioFrame(self.samples[i: i + AUDIO_FRAME_SAMPLES].tobytes(), sr, 1, AUDIO_FRAME_SAMPLES)
            for i in range(0, sr, AUDIO_FRAME_SAMPLES)
        ]


def slide(width: int = SHARE_SIZE[0], height: int = SHARE_SIZE[1]) -> tuple[bytes, int, int]:
    """A presentation slide as a screen share shows one: ``(I420 bytes, width, height)``; a light page, a
    title, bullet lines and a small bar chart, drawn with Pillow at a fixed size (so always the same)."""
    from PIL import Image, ImageDraw, ImageFont  # only a share needs them

    from ..media.compose.labels import FONTS, rgb_to_i420
    img = Image.new("RGB", (width, height), (246, 246, 242))
    d = ImageDraw.Draw(img)
    s = height / 1200
    title = ImageFont.truetype(FONTS[0].path, round(88 * s))
    body = ImageFont.truetype(FONTS[0].path, round(52 * s))
    d.rectangle((0, 0, width, round(170 * s)), fill=(32, 52, 96))
    d.text((round(90 * s), round(40 * s)), "Release review: room composites", font=title, fill=(255, 255, 255))
    lines = ("Every participant gets a tile, with or without a camera",
             "Names, muted microphones and who speaks are drawn",
             "The stage waits 1.5 s before it changes speaker",
             "Screen shares are shown whole, never cropped")
    for i, line in enumerate(lines):
        top = round((300 + 130 * i) * s)
        d.ellipse((round(100 * s), top + round(20 * s), round(124 * s), top + round(44 * s)), fill=(32, 52, 96))
        d.text((round(160 * s), top), line, font=body, fill=(30, 30, 30))
    for i, (value, colour) in enumerate(((0.45, (70, 130, 180)), (0.7, (220, 120, 60)), (0.9, (90, 160, 90)))):
        x0, base = round((1300 + 170 * i) * s), round(1120 * s)
        d.rectangle((x0, base - round(value * 400 * s), x0 + round(120 * s), base), fill=colour)
    d.line((round(1260 * s), round(1120 * s), round(1820 * s), round(1120 * s)), fill=(30, 30, 30), width=3)
    y, u, v = rgb_to_i420(np.asarray(img))
    return y.tobytes() + u.tobytes() + v.tobytes(), width, height
