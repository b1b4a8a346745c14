"""The audio mixer: sums every audio track into one fixed-rate stream.

Each track has a jitter buffer of interleaved int16 samples. The pipeline pulls
fixed blocks (e.g. 20 ms) against the media clock; a track that has too little
contributes silence for the missing part (a gap never stalls the mix), and a
track that has piled up more than ``max_buffer_ms`` is trimmed so latency stays
bounded. A track only starts contributing once ``prebuffer_ms`` has arrived, so
packet jitter does not turn into clicks.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np


@dataclass
class _TrackBuffer:
    chunks: deque = field(default_factory=deque)  # of (n, channels) int16 arrays
    samples: int = 0
    primed: bool = False
    gains: np.ndarray | None = None  # per output channel, None for unity


class AudioMixer:
    """Mixes tracks keyed by track SID at ``sample_rate`` Hz with ``channels`` channels.

    ``push`` takes ``(n, channels) int16`` sample blocks; ``mix(n)`` returns a
    ``(n, channels) int16`` block (saturating sum of all primed tracks).
    """

    def __init__(self, sample_rate: int = 48000, channels: int = 2,
                 prebuffer_ms: int = 40, max_buffer_ms: int = 120) -> None:
        self.sample_rate = sample_rate
        self.channels = channels
        self._prebuffer = sample_rate * prebuffer_ms // 1000
        self._max = sample_rate * max_buffer_ms // 1000
        self._tracks: dict[str, _TrackBuffer] = {}

    @classmethod
    def for_frames(cls, sample_rate: int, channels: int, frame_ms: int) -> "AudioMixer":
        """A mixer for tracks that arrive ``frame_ms`` ms at a time: it primes on two frames (one
        to play while the next arrives, plus as much again for arrival jitter) and trims above
        prebuffer + one frame + 60 ms. 20 ms frames give 40 ms latency and a 120 ms cap."""
        prebuffer = 2 * frame_ms
        return cls(sample_rate, channels, prebuffer_ms=prebuffer, max_buffer_ms=prebuffer + frame_ms + 60)

    @property
    def latency_ns(self) -> int:
        """How long a sample waits in the mixer (the prebuffer): the pipeline pulls this much
        later than the block's PTS, so that sound and picture of the same moment line up."""
        return self._prebuffer * 1_000_000_000 // self.sample_rate

    def add_track(self, key: str, gains: tuple[float, ...] | None = None) -> None:
        """Mix track ``key``; ``gains`` per output channel route it (e.g. ``(1, 0)``: left only)."""
        self._tracks.setdefault(key, _TrackBuffer(gains=None if gains is None else np.asarray(gains)))

    def remove_track(self, key: str) -> None:
        self._tracks.pop(key, None)

    def push(self, key: str, samples: np.ndarray) -> None:
        """Append ``(n, channels) int16`` samples to the track's buffer (ignored for unknown tracks)."""
        buf = self._tracks.get(key)
        if buf is None or len(samples) == 0:
            return
        buf.chunks.append(samples)
        buf.samples += len(samples)
        if not buf.primed and buf.samples >= self._prebuffer:
            buf.primed = True
        if buf.samples > self._max:
            self._drop(buf, buf.samples - self._prebuffer)

    @staticmethod
    def _drop(buf: _TrackBuffer, n: int) -> None:
        while n > 0 and buf.chunks:
            head = buf.chunks[0]
            if len(head) <= n:
                buf.chunks.popleft()
                n -= len(head)
                buf.samples -= len(head)
            else:
                buf.chunks[0] = head[n:]
                buf.samples -= n
                n = 0

    def _take(self, buf: _TrackBuffer, n: int, out: np.ndarray) -> None:
        """Add up to ``n`` samples of ``buf`` into ``out`` (int32); an underrun re-primes the track."""
        pos = 0
        while pos < n and buf.chunks:
            head = buf.chunks[0]
            k = min(n - pos, len(head))
            out[pos: pos + k] += head[:k]
            pos += k
            if k == len(head):
                buf.chunks.popleft()
            else:
                buf.chunks[0] = head[k:]
        buf.samples -= pos
        if pos < n:
            buf.primed = False

    def mix(self, n: int) -> np.ndarray:
        """The next ``n`` samples of the mix as ``(n, channels) int16``."""
        acc = np.zeros((n, self.channels), dtype=np.int32)
        for buf in self._tracks.values():
            if not buf.primed:
                continue
            if buf.gains is None:
                self._take(buf, n, acc)
            else:
                part = np.zeros_like(acc)
                self._take(buf, n, part)
                acc += (part * buf.gains).astype(np.int32)
        np.clip(acc, -32768, 32767, out=acc)
        return acc.astype(np.int16)
