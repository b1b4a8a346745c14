"""The audio mixer: sums every audio track into one fixed-rate stream.

Each track has a jitter buffer of interleaved int16 samples. The pipeline pulls
fixed blocks (e.g. 20 ms) against the media clock; a track that has too little
contributes silence for the missing part (a gap never stalls the mix), and a
track that has piled up more than ``max_buffer_ms`` is trimmed so latency stays
bounded. A track only starts contributing once ``prebuffer_ms`` has arrived, so
packet jitter does not turn into clicks.

Samples that carry their own time (the packet receiver's, on the sync engine's timeline) are
:meth:`AudioMixer.place` d at their position instead: gaps become silence, overlaps are cut, and
the track plays exactly where its timestamps put it, whatever the arrival order of the tracks.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np


#: How far (samples at 48 kHz: 2.5 ms) a placed chunk may start from where its track's last one ended
#: and still count as contiguous: timestamps jitter by a few RTP ticks, sound must not.
PLACE_SLACK = 120


@dataclass
class _TrackBuffer:
    chunks: deque = field(default_factory=deque)  # of (n, channels) int16 arrays
    samples: int = 0
    primed: bool = False
    gains: np.ndarray | None = None  # per output channel, None for unity
    end: int | None = None  # placed tracks: the mix position (samples) where its buffered samples end


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
        self.position = 0  # samples mixed so far: the position of the next block
        self.late_samples = 0  # placed samples that came after their position was mixed (dropped)

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

    def place(self, key: str, at: int, samples: np.ndarray) -> None:
        """Put ``(n, channels) int16`` samples of track ``key`` at mix position ``at`` (samples since
        the first block). A gap before them since the track's last samples is silence, a step of up
        to :data:`PLACE_SLACK` samples either way is taken as contiguous (timestamp jitter), samples
        overlapping what is buffered or already mixed are cut."""
        buf = self._tracks.get(key)
        if buf is None or len(samples) == 0:
            return
        buf.primed = True
        end = buf.end if buf.end is not None and buf.end >= self.position else None
        if end is not None and abs(at - end) <= PLACE_SLACK:
            at = end
        start = max(at, end if end is not None else self.position)
        if start > at:  # the head was mixed already or overlaps what is buffered
            self.late_samples += max(0, min(self.position - at, len(samples)))
            samples = samples[start - at:]
            if len(samples) == 0:
                return
        gap = start - (end if end is not None else self.position)
        if end is None:
            self._drop(buf, buf.samples)  # an underrun: the track starts again at its position
        if gap > 0:
            buf.chunks.append(np.zeros((gap, self.channels), np.int16))
            buf.samples += gap
        buf.chunks.append(samples)
        buf.samples += len(samples)
        buf.end = start + len(samples)

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
        if pos < n and buf.end is None:
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
        self.position += n
        return acc.astype(np.int16)
