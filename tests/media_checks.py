"""What a user would check in a recording, beyond ffprobe: decoded pictures and sound."""

from __future__ import annotations

import av
import numpy as np

from pyegress.media.compose.layout import grid_rects


def frame_at(path, t_s: float) -> np.ndarray:
    """The decoded video frame nearest after ``t_s`` seconds, as ``(H*3/2, W) uint8`` yuv420p."""
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            if frame.time is not None and frame.time >= t_s:
                return frame.to_ndarray(format="yuv420p")
    raise AssertionError(f"no video frame at {t_s} s in {path}")


def tile_chroma(yuv: np.ndarray, width: int, height: int, n: int) -> list[tuple[float, float]]:
    """Mean (U, V) of the central area of each of the ``n`` grid tiles."""
    chroma = yuv[height:].reshape(2, height // 2, width // 2)
    out = []
    for r in grid_rects(n, width, height):
        cx, cy, qw, qh = (r.x + r.w // 2) // 2, (r.y + r.h // 2) // 2, r.w // 8, r.h // 8
        u = chroma[0, cy - qh: cy + qh, cx - qw: cx + qw].mean()
        v = chroma[1, cy - qh: cy + qh, cx - qw: cx + qw].mean()
        out.append((float(u), float(v)))
    return out


def distinct_colours(colours: list[tuple[float, float]], min_distance: float = 12.0) -> int:
    """How many clearly different (U, V) colours there are (greedy clustering)."""
    centres: list[tuple[float, float]] = []
    for c in colours:
        if all(np.hypot(c[0] - k[0], c[1] - k[1]) >= min_distance for k in centres):
            centres.append(c)
    return len(centres)


def audio_rms(path, start_s: float, length_s: float) -> float:
    """RMS of the decoded audio (first channel, full scale = 1.0) over a window."""
    samples = []
    with av.open(str(path)) as c:
        for frame in c.decode(audio=0):
            if frame.time is None or frame.time < start_s:
                continue
            if frame.time > start_s + length_s:
                break
            samples.append(frame.to_ndarray()[0])
    if not samples:
        return 0.0
    x = np.concatenate(samples).astype(np.float64)
    if np.abs(x).max() > 1.5:  # integer sample formats
        x /= 32768.0
    return float(np.sqrt(np.mean(x ** 2)))


def frame_chroma(yuv: np.ndarray, width: int, height: int) -> tuple[float, float]:
    """Mean (U, V) of a whole ``(H*3/2, W)`` yuv420p frame."""
    chroma = yuv[height:].reshape(2, height // 2, width // 2)
    return float(chroma[0].mean()), float(chroma[1].mean())


def dominant_hz(path, start_s: float, length_s: float, channel: int = 0) -> float:
    """The strongest frequency (Hz) of one audio channel over a window."""
    samples, rate = [], 48000
    with av.open(str(path)) as c:
        rate = c.streams.audio[0].sample_rate
        for frame in c.decode(audio=0):
            if frame.time is None or frame.time < start_s:
                continue
            if frame.time > start_s + length_s:
                break
            data = frame.to_ndarray()
            if frame.format.is_planar:
                samples.append(data[channel].astype(np.float64))
            else:  # packed: channels interleaved in one row
                samples.append(data[0][channel:: len(frame.layout.channels)].astype(np.float64))
    x = np.concatenate(samples)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[spectrum.argmax()])
