"""The generated publisher's picture and sound as a media file, for pages that play it (web egress tests
and benchmarks)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from pyegress.devtools.patterns import AUDIO_SAMPLE_RATE, AudioPattern, VideoPattern
from pyegress.media.compose.video import i420_to_av

_OPUS_FRAME = AUDIO_SAMPLE_RATE // 50  # 20 ms


def write_publisher_webm(path: Path, seconds: int, width: int = 640, height: int = 360, fps: int = 30) -> None:
    """Write ``seconds`` of generated publisher 0 (:class:`VideoPattern`: sweeping bar, frame counter;
    :class:`AudioPattern`: tone with a 1 kHz beep at every one-second mark) as VP8 + mono Opus WebM,
    ``width`` x ``height`` pixels at ``fps`` frames per second. ``tests/media_checks.av_offsets_s``
    reads the A/V offset of a recording of it back.

    Raises:
        av.FFmpegError: the file cannot be written.
    """
    with av.open(str(path), "w") as out:
        video = out.add_stream("libvpx", rate=fps)
        video.width, video.height, video.pix_fmt, video.bit_rate = width, height, "yuv420p", 1_000_000
        audio = out.add_stream("libopus", rate=AUDIO_SAMPLE_RATE)
        audio.layout = "mono"
        pattern = VideoPattern(width, height, fps, 0)
        for n in range(seconds * fps):
            pattern.render(n)
            frame = i420_to_av(bytes(pattern.buffer), width, height)
            frame.pts, frame.time_base = n, Fraction(1, fps)
            out.mux(video.encode(frame))
        samples = np.tile(AudioPattern(0).samples, seconds)
        for i in range(0, len(samples), _OPUS_FRAME):
            frame = av.AudioFrame.from_ndarray(samples[i: i + _OPUS_FRAME].reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = AUDIO_SAMPLE_RATE, i, Fraction(1, AUDIO_SAMPLE_RATE)
            out.mux(audio.encode(frame))
        out.mux(video.encode(None))
        out.mux(audio.encode(None))
