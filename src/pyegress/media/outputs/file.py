"""File output: H.264/AAC in MP4 (or another container PyAV can write).

MP4 is written fragmented (``empty_moov`` + a fragment per second) and every
packet is flushed to the file, so a file cut short by a crash or a kill is
still playable up to its last fragment; nothing has to be rewritten at the end.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..encoding import EncodingSettings

_H264_PROFILES = {"h264_baseline": "baseline", "h264_main": "main", "h264_high": "high"}
_FRAGMENT_US = 1_000_000


class FileOutput:
    """Encodes and muxes one file.

    Video frames are yuv420p ``av.VideoFrame`` at the output size with a PTS in frames;
    audio blocks are ``(n, channels) int16`` with a PTS in samples. Not
    thread-safe: call from one thread (the pipeline's encoder thread).

    Raises:
        av.FFmpegError: the file cannot be opened or written.
    """

    def __init__(self, path: Path, settings: EncodingSettings, *, video: bool, audio: bool,
                 audio_channels: int = 2) -> None:
        self.path = path
        self.settings = settings
        path.parent.mkdir(parents=True, exist_ok=True)
        options = {}
        if path.suffix.lower() in (".mp4", ".m4a", ".mov"):
            options = {"movflags": "empty_moov+default_base_moof", "flush_packets": "1",
                       "frag_duration": str(_FRAGMENT_US)}
        self._container = av.open(str(path), "w", options=options)
        self._video = self._audio = None
        if video:
            s = settings
            v = self._container.add_stream(
                "libx264", rate=s.framerate,
                options={"preset": "veryfast", "profile": _H264_PROFILES[s.video_codec],
                         "g": str(s.gop_frames), "keyint_min": str(s.gop_frames),
                         "sc_threshold": "0", "bf": "0" if s.video_codec == "h264_baseline" else "2"})
            v.width, v.height, v.pix_fmt = s.width, s.height, "yuv420p"
            v.bit_rate = s.video_bitrate * 1000
            v.codec_context.time_base = Fraction(1, s.framerate)
            self._video = v
        if audio:
            a = self._container.add_stream(settings.audio_codec, rate=settings.audio_frequency)
            a.layout = "stereo" if audio_channels == 2 else "mono"
            a.bit_rate = settings.audio_bitrate * 1000
            self._audio = a
        self._audio_layout = "stereo" if audio_channels == 2 else "mono"

    def write_video(self, frame: av.VideoFrame, pts: int) -> None:
        """Encode ``frame`` (yuv420p, the output size) at ``pts`` frames; the same frame may be sent again."""
        frame.pts = pts
        frame.time_base = Fraction(1, self.settings.framerate)
        self._container.mux(self._video.encode(frame))

    def write_audio(self, samples: np.ndarray, pts: int) -> None:
        """Encode ``(n, channels) int16`` samples at ``pts`` samples."""
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout=self._audio_layout)
        frame.sample_rate = self.settings.audio_frequency
        frame.pts = pts
        frame.time_base = Fraction(1, self.settings.audio_frequency)
        self._container.mux(self._audio.encode(frame))

    def close(self) -> int:
        """Flush the encoders, finish the file and return its size in bytes."""
        for stream in (self._video, self._audio):
            if stream is not None:
                self._container.mux(stream.encode(None))
        self._container.close()
        return os.path.getsize(self.path)
