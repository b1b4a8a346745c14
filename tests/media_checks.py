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


def bar_phases(path, bar_period_s: float = 2.0, skip_s: float = 1.0) -> list[tuple[float, float]]:
    """For each decoded frame after ``skip_s``: ``(t, phase)`` where phase in [0, 1) is the generated
    publisher's sweeping bar position (0 = left edge) read from the lower half: the middle of the run of
    bright columns around the brightest one. (The brightest column alone lands anywhere across a scaled,
    coded bar: 50 ms of error at 1280 px.)"""
    out = []
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            if frame.time is None or frame.time < skip_s:
                continue
            y = frame.to_ndarray(format="yuv420p")[: frame.height]
            columns = y[frame.height // 2:].mean(axis=0)
            x = int(columns.argmax())
            if columns[x] < 200:  # no bar visible (e.g. black before the first frame)
                continue
            threshold = (columns[x] + np.median(columns)) / 2  # half-way from the background to the bar
            lo = hi = x
            while lo > 0 and columns[lo - 1] >= threshold:
                lo -= 1
            while hi < len(columns) - 1 and columns[hi + 1] >= threshold:
                hi += 1
            bar_w = max(2, frame.width // 40)
            left = (lo + hi - bar_w + 1) / 2
            out.append((float(frame.time), min(0.999, max(0.0, left / (frame.width - bar_w)))))
    return out


def beep_onsets(path, beep_hz: float = 1000.0, window_s: float = 0.005, skip_s: float = 1.0) -> list[float]:
    """Times (s) where a ``beep_hz`` tone starts in the first audio channel (energy in that band jumps)."""
    samples, rate, start = [], 48000, None
    with av.open(str(path)) as c:
        rate = c.streams.audio[0].sample_rate
        for frame in c.decode(audio=0):
            if frame.time is None or frame.time < skip_s:
                continue
            start = frame.time if start is None else start
            data = frame.to_ndarray()
            samples.append(data[0] if frame.format.is_planar else data[0][:: len(frame.layout.channels)])
    x = np.concatenate(samples).astype(np.float64)
    n = int(rate * window_s)
    t = np.arange(n) / rate
    ref = np.exp(-2j * np.pi * beep_hz * t)
    energy = np.array([abs(np.dot(x[i: i + n], ref)) for i in range(0, len(x) - n, n)])
    threshold = energy.max() / 2
    onsets, above = [], energy[0] >= threshold  # a beep already sounding at skip_s started earlier: not an onset
    for i, e in enumerate(energy):
        if e >= threshold and not above:
            onsets.append(start + i * window_s)
        above = e >= threshold
    return onsets


def av_offsets_s(path) -> list[float]:
    """Audio-minus-video offset (s) of each beep in a generated publisher's recording (see :func:`av_offsets_at`)."""
    return [offset for _, offset in av_offsets_at(path)]


def av_offsets_at(path, phases: list[tuple[float, float]] | None = None) -> list[tuple[float, float]]:
    """``(t, offset)``: the audio-minus-video offset (s) of each beep at ``t`` s in a generated publisher's recording.

    The publisher beeps at the start of every second of its clock, when its bar is at the left
    edge or half-way (a 2 s sweep). Each beep onset is compared with the time the picture shows
    that moment (found from the bar's phase in the frames around it): positive means the sound
    comes late. ``phases``: the file's :func:`bar_phases` from 2 s on, if the caller has them already.
    """
    # WebRTC's receiver time-stretches audio for about its first second: start measuring after it
    phases = bar_phases(path, skip_s=2.0) if phases is None else phases
    offsets = []
    for onset in beep_onsets(path, skip_s=2.0):
        near = [(t, p) for t, p in phases if abs(t - onset) <= 0.5]
        if len(near) < 5:
            continue
        # each frame says when its bar was last at a one-second mark: t - (phase * 2 s mod 1 s);
        # the onset's distance to that mark, wrapped into [-0.5, 0.5) s
        marks = np.array([t - ((p * 2.0) % 1.0) for t, p in near])
        offsets.append((onset, float(np.median((onset - marks + 0.5) % 1.0 - 0.5))))
    return offsets


def counter_frames(path, width: int = 640, height: int = 360) -> list[tuple[float, int]]:
    """``(t, n)`` for each decoded video frame whose generated-publisher frame counter reads ``n``; frames
    are scaled to the publisher's ``width`` x ``height`` first (a single-tile composite of it fills them)."""
    from pyegress.devtools.patterns import VideoPattern

    pattern = VideoPattern(width, height, 30, 0)
    out = []
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            if frame.time is None:
                continue
            if (frame.width, frame.height) != (width, height):
                frame = frame.reformat(width, height)
            n = pattern.read_counter(frame.to_ndarray(format="yuv420p")[:height])
            if n is not None:
                out.append((float(frame.time), n))
    return out


def packet_times(path, stream: str) -> list[float]:
    """Presentation times (s) of every packet of the first ``stream`` (``v`` or ``a``), sorted, from ffprobe."""
    import subprocess

    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", f"{stream}:0", "-show_entries",
                          "packet=pts_time", "-of", "csv=p=0", str(path)],
                         check=True, capture_output=True, text=True).stdout
    return sorted(float(x) for x in out.split() if x.strip() not in ("", "N/A"))


def media_span_s(path) -> float:
    """Seconds of media a player can read in the file: from its first packet's start to its last
    packet's end over every stream, as ffprobe reads them packet by packet (a file cut short — a
    full disk, a crash — has no trustworthy duration in its header)."""
    import subprocess

    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "packet=pts_time,duration_time", "-of", "csv=p=0",
                          str(path)], check=False, capture_output=True, text=True).stdout
    spans = []
    for line in out.split():
        pts, _, duration = line.partition(",")
        if pts not in ("", "N/A"):
            start = float(pts)
            spans.append((start, start + (float(duration) if duration not in ("", "N/A") else 0.0)))
    return max(e for _, e in spans) - min(s for s, _ in spans) if spans else 0.0
