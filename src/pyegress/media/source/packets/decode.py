"""Decoding a track's encoded samples (from the packet receiver) with PyAV, for a composite.

A :class:`VideoDecoder` keeps the reference chain of one video track: it decodes every sample
in order (skipping to the next keyframe after a loss or a pause, as a decoder must) and hands
out the newest picture as packed I420. An :class:`AudioDecoder` turns Opus packets into
interleaved int16 PCM at the egress's sample rate and channel count.
"""

from __future__ import annotations

import logging

import av
import numpy as np

from .stream import KeyframeGate, Sample

log = logging.getLogger(__name__)


class I420Picture:
    """A decoded picture as the compositor takes it: tightly packed I420 ``data`` of ``width`` x ``height`` px."""

    __slots__ = ("data", "width", "height")

    def __init__(self, frame: av.VideoFrame) -> None:
        if frame.format.name != "yuv420p" or frame.width % 2 or frame.height % 2:
            frame = frame.reformat(width=frame.width & ~1, height=frame.height & ~1, format="yuv420p")
        # to_ndarray packs the planes (drops the line padding): (H * 3/2, W) uint8
        self.data = frame.to_ndarray().data
        self.width, self.height = frame.width, frame.height


class VideoDecoder:
    """Decodes one video track (``codec`` ``vp8``, ``vp9``, ``h264`` or ``av1``).

    :meth:`decode` takes every sample in order; a sample after a loss, or the first after
    :meth:`restart`, is skipped unless it is a keyframe. :meth:`picture` is the newest decoded one.
    """

    def __init__(self, codec: str) -> None:
        self.codec = codec
        self._ctx = av.CodecContext.create({"av1": "libdav1d"}.get(codec, codec), "r")
        self._ctx.thread_count = 1  # one decode per track per frame; threads would only add latency
        self._latest: av.VideoFrame | None = None
        self._keyframes = KeyframeGate()
        self.errors = 0
        self.size: tuple[int, int] | None = None  # width, height (px) of the newest decoded picture

    def restart(self) -> None:
        """Samples were dropped (a pause): wait for a keyframe before decoding again."""
        self._keyframes.restart()

    def decode(self, sample: Sample) -> None:
        if not self._keyframes.admit(sample):
            return
        try:
            frames = self._ctx.decode(av.Packet(sample.data))
        except av.FFmpegError as e:  # a corrupt sample: wait for the next keyframe
            self.errors += 1
            log.warning("%s sample does not decode: %s", self.codec, e)
            self._keyframes.restart()
            return
        if frames:
            self._latest = frames[-1]
            self.size = (self._latest.width, self._latest.height)

    def picture(self) -> I420Picture | None:
        """The newest decoded picture (once: None until another is decoded)."""
        frame, self._latest = self._latest, None
        return I420Picture(frame) if frame is not None else None


class AudioDecoder:
    """Decodes one Opus track into ``(n, channels)`` int16 at ``sample_rate`` Hz.

    Opus decodes at 48 kHz (RFC 7587 §4: its RTP clock is always 48 kHz), into the channel count asked
    of the decoder; at that rate the float samples are converted with numpy, which costs a quarter of
    what a resampler per packet does. Other rates go through :class:`av.AudioResampler`.
    """

    def __init__(self, sample_rate: int, channels: int) -> None:
        self._ctx = av.CodecContext.create("opus", "r")
        self._ctx.sample_rate = 48_000
        self._ctx.layout = "stereo" if channels == 2 else "mono"
        self.channels = channels
        self._resampler = None if sample_rate == 48_000 else av.AudioResampler(
            format="s16", layout=self._ctx.layout.name, rate=sample_rate)
        self.errors = 0

    def decode(self, sample: Sample) -> np.ndarray:
        """The PCM of one Opus packet (empty if it does not decode)."""
        try:
            frames = self._ctx.decode(av.Packet(sample.data))
        except av.FFmpegError:
            self.errors += 1
            return np.zeros((0, self.channels), np.int16)
        if self._resampler is not None:
            out = [r.to_ndarray().reshape(-1, self.channels) for f in frames for r in self._resampler.resample(f)]
        else:
            out = [_to_s16(f) for f in frames]
        return np.concatenate(out) if len(out) > 1 else out[0] if out else np.zeros((0, self.channels), np.int16)


def _to_s16(frame: av.AudioFrame) -> np.ndarray:
    """``(n, channels)`` int16 of a decoded frame: float planar (fltp: ``(channels, n)``) or packed, or s16."""
    x = frame.to_ndarray()
    if x.dtype == np.int16:
        return x.reshape(-1, len(frame.layout.channels))
    x = x.T if frame.format.is_planar else x.reshape(-1, len(frame.layout.channels))
    return (x * 32767.0).clip(-32768, 32767).astype(np.int16)
