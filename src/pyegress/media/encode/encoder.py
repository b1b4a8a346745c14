"""Encoding once for every output.

:class:`MediaEncoder` owns the video and audio encoders. They live as streams of
a host container that writes to ``os.devnull`` (Matroska, which asks for global
headers, so H.264 gets its SPS/PPS as extradata for MP4/FLV; ``repeat-headers``
keeps them in-band too, as MPEG-TS segments need). Outputs add streams copied
from these templates and mux the same packets: one encode, any number of
files, segment sets and streams.
"""

from __future__ import annotations

import os
from fractions import Fraction

import av
import numpy as np

from ...contract.encoding import EncodingSettings

_H264_PROFILES = {"h264_baseline": "baseline", "h264_main": "main", "h264_high": "high"}
_AUDIO_ENCODERS = {"aac": "aac", "opus": "libopus", "mp3": "libmp3lame"}


#: Pixel rate (pixels/s) one encoder thread handles in real time with room to spare (720p30 takes ~40% of a core).
SINGLE_THREAD_PIXEL_RATE = 1280 * 720 * 30


def encoder_threads(s: EncodingSettings) -> int:
    """Encoder threads for these settings: 1 up to 720p30, else 0 (the encoder picks by core count).

    More threads only add overhead at these sizes: x264's frame threads cost 0.52 vs 0.39 CPU-s per
    media-s for a 720p30 composite, and libvpx's VP8 row threads busy-wait on each other (a 640x360
    track egress went from 0.18-0.28 to 0.12-0.13 core with one thread)."""
    return 1 if s.width * s.height * s.framerate <= SINGLE_THREAD_PIXEL_RATE else 0


class MediaEncoder:
    """Encodes yuv420p frames and int16 audio blocks into packets.

    ``video_stream``/``audio_stream`` are the templates outputs copy (``None``
    when that medium is not recorded). Video PTS are in frames (time base
    1/framerate), audio PTS in samples (1/audio_frequency).

    Raises:
        av.FFmpegError: an encoder cannot be opened with these settings.
    """

    def __init__(self, settings: EncodingSettings, *, video: bool, audio: bool, audio_channels: int = 2) -> None:
        self.settings = settings
        self._host = av.open(os.devnull, "w", format="matroska")
        self.video_stream = self.audio_stream = None
        s = settings
        if video:
            if s.video_codec == "vp8":
                v = self._host.add_stream("libvpx", rate=s.framerate, options={
                    "deadline": "realtime", "cpu-used": "8", "g": str(s.gop_frames), "lag-in-frames": "0",
                    "threads": str(encoder_threads(s))})
            else:
                v = self._host.add_stream("libx264", rate=s.framerate, options={
                    "preset": "veryfast", "profile": _H264_PROFILES[s.video_codec], "g": str(s.gop_frames),
                    "keyint_min": str(s.gop_frames), "sc_threshold": "0",
                    "bf": "0" if s.video_codec == "h264_baseline" else "2",
                    "threads": str(encoder_threads(s)), "x264-params": "repeat-headers=1"})
            v.width, v.height, v.pix_fmt = s.width, s.height, "yuv420p"
            v.bit_rate = s.video_bitrate * 1000
            v.codec_context.time_base = Fraction(1, s.framerate)
            self.video_stream = v
        if audio:
            a = self._host.add_stream(_AUDIO_ENCODERS[s.audio_codec], rate=s.audio_frequency)
            a.layout = "stereo" if audio_channels == 2 else "mono"
            a.bit_rate = s.audio_bitrate * 1000
            self.audio_stream = a
        self._layout = "stereo" if audio_channels == 2 else "mono"
        if video or audio:
            self._host.start_encoding()  # opens the encoders, fills in extradata

    def add_streams(self, container: av.container.OutputContainer) -> dict[str, av.stream.Stream]:
        """Streams copying the encoders' templates in ``container`` (:class:`~..outputs.base.StreamTemplates`)."""
        templates = {"video": self.video_stream, "audio": self.audio_stream}
        return {kind: container.add_stream_from_template(t) for kind, t in templates.items() if t is not None}

    def encode_video(self, frame: av.VideoFrame | None, pts: int = 0) -> list[av.Packet]:
        """Encode ``frame`` (yuv420p at the output size) at ``pts`` frames; ``None`` flushes."""
        if frame is not None:
            frame.pts = pts
            frame.time_base = self.video_stream.codec_context.time_base
        return self.video_stream.encode(frame)

    def encode_audio(self, samples: np.ndarray | None, pts: int = 0) -> list[av.Packet]:
        """Encode ``(n, channels) int16`` samples at ``pts`` samples; ``None`` flushes."""
        if samples is None:
            return self.audio_stream.encode(None)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout=self._layout)
        frame.sample_rate = self.settings.audio_frequency
        frame.pts = pts
        frame.time_base = Fraction(1, self.settings.audio_frequency)
        return self.audio_stream.encode(frame)

    def close(self) -> None:
        if self.video_stream is not None or self.audio_stream is not None:
            self._host.close()
