"""The generated publisher's picture and sound as media files: a WebM for pages that play it (web egress
tests and benchmarks), an IVF + Ogg pair for ``filepub`` to publish (``bench/av_sync.py``)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from pyegress.devtools.patterns import AUDIO_SAMPLE_RATE, AudioPattern, VideoPattern
from pyegress.media.compose.video import i420_to_av

_OPUS_FRAME = AUDIO_SAMPLE_RATE // 50  # 20 ms


def _video_frames(seconds: int, width: int, height: int, fps: int) -> Iterator[av.VideoFrame]:
    pattern = VideoPattern(width, height, fps, 0)
    for n in range(seconds * fps):
        pattern.render(n)
        frame = i420_to_av(bytes(pattern.buffer), width, height)
        frame.pts, frame.time_base = n, Fraction(1, fps)
        yield frame


def _audio_frames(seconds: int) -> Iterator[av.AudioFrame]:
    samples = np.tile(AudioPattern(0).samples, seconds)
    for i in range(0, len(samples), _OPUS_FRAME):
        frame = av.AudioFrame.from_ndarray(samples[i: i + _OPUS_FRAME].reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = AUDIO_SAMPLE_RATE, i, Fraction(1, AUDIO_SAMPLE_RATE)
        yield frame


def _add_vp8(out: av.container.OutputContainer, width: int, height: int, fps: int, **options: str) -> av.VideoStream:
    video = out.add_stream("libvpx", rate=fps, options=options)
    video.width, video.height, video.pix_fmt, video.bit_rate = width, height, "yuv420p", 1_000_000
    return video


def _add_opus(out: av.container.OutputContainer) -> av.AudioStream:
    audio = out.add_stream("libopus", rate=AUDIO_SAMPLE_RATE)
    audio.layout = "mono"
    return audio


def _packets(stream: av.stream.Stream, frames) -> Iterator[av.Packet]:
    for frame in frames:
        yield from stream.encode(frame)
    yield from stream.encode(None)


def write_publisher_webm(path: Path, seconds: int, width: int = 640, height: int = 360, fps: int = 30) -> None:
    """Write ``seconds`` of generated publisher 0 (:class:`VideoPattern`: sweeping bar, frame counter;
    :class:`AudioPattern`: tone with a 1 kHz beep at every one-second mark) as VP8 + mono Opus WebM,
    ``width`` x ``height`` pixels at ``fps`` frames per second. ``tests/media_checks.av_offsets_s``
    reads the A/V offset of a recording of it back.

    Raises:
        av.FFmpegError: the file cannot be written.
    """
    with av.open(str(path), "w") as out:
        video, audio = _add_vp8(out, width, height, fps), _add_opus(out)
        out.mux(_packets(video, _video_frames(seconds, width, height, fps)))
        out.mux(_packets(audio, _audio_frames(seconds)))


def write_publisher_ivf_ogg(video_path: Path, audio_path: Path, seconds: int, width: int = 640, height: int = 360,
                            fps: int = 30) -> None:
    """Write the same picture and sound as :func:`write_publisher_webm`, VP8 into an IVF and Opus into an Ogg,
    for ``filepub`` to publish in a loop: both last exactly ``seconds`` (``seconds * fps`` frames, 20 ms
    packets without the encoder's tail), so a loop keeps the beeps on the bar's marks; a keyframe every
    second and no hidden frames (each IVF frame is one frame time when sent).

    Raises:
        av.FFmpegError: a file cannot be written.
    """
    with av.open(str(video_path), "w", format="ivf") as out:
        video = _add_vp8(out, width, height, fps, deadline="realtime", g=str(fps), **{"lag-in-frames": "0",
                                                                                      "auto-alt-ref": "0"})
        out.mux(_packets(video, _video_frames(seconds, width, height, fps)))
    with av.open(str(audio_path), "w", format="ogg") as out:
        audio = _add_opus(out)
        out.mux(list(_packets(audio, _audio_frames(seconds)))[: seconds * AUDIO_SAMPLE_RATE // _OPUS_FRAME])
