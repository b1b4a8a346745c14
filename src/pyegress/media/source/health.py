"""Receive health of a source's tracks: how many frames arrive, at what rate, and how often video freezes.

A freeze is counted as WebRTC's receiver statistics count one (W3C webrtc-stats,
``RTCInboundRtpStreamStats.freezeCount`` and ``totalFreezesDuration``): an interval between two video
frames of at least max(3 × the mean interval, the mean + 150 ms), the mean taken over the previous
:data:`MEAN_INTERVALS` intervals (a freeze's own interval is left out of it). The intervals are the sync
engine's PTS for the packet receiver's samples (they arrive in batches, so their arrival says little) and
arrival times for the SDK's decoded frames. A gap the recording made itself (the publisher muted the track,
the egress was paused) is no freeze: :meth:`ReceiveHealth.gap` starts the track's intervals anew. Audio
frames are counted, not timed: with DTX a publisher sends nothing in silence.

The handler reports :meth:`ReceiveHealth.report` with every ``progress`` event; the service turns it into
metrics (docs/metrics.md).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Callable

from ...contract.events import TrackReceive

#: Intervals the mean frame interval is taken over (W3C webrtc-stats ``freezeCount``: the last 30 frames).
MEAN_INTERVALS = 30
#: Fewer intervals than this say too little about a track's frame rate to call one a freeze.
MIN_INTERVALS = 5
#: A freeze lasts at least the mean interval plus this (ns).
FREEZE_EXTRA_NS = 150_000_000


class _Track:
    __slots__ = ("kind", "frames", "reported", "since_ns", "last_ns", "intervals", "interval_sum", "freezes",
                 "freeze_ns")

    def __init__(self, kind: str, now_ns: int) -> None:
        self.kind = kind
        self.frames = self.reported = 0  # frames received, and as of the last report
        self.since_ns = now_ns  # start of the current report interval for this track (clock ns)
        self.last_ns: int | None = None  # time of the last video frame (its PTS or arrival, ns)
        self.intervals: deque[int] = deque(maxlen=MEAN_INTERVALS)
        self.interval_sum = 0
        self.freezes = self.freeze_ns = 0


class ReceiveHealth:
    """Counts frames per subscribed track (by track SID) and finds video freezes in their intervals.

    Sources call :meth:`add` when a track is subscribed, :meth:`frame` for each frame or sample, :meth:`gap`
    across a mute or a pause, :meth:`remove` when it ends; all on the event loop. ``clock`` (ns, monotonic)
    times the report intervals and, when :meth:`frame` gets no time, the frames.
    """

    def __init__(self, clock: Callable[[], int] = time.monotonic_ns) -> None:
        self._clock = clock
        self._tracks: dict[str, _Track] = {}

    def add(self, sid: str, kind: str) -> None:
        """Start counting track ``sid`` of ``kind`` (``audio``/``video``); a track added again starts over."""
        self._tracks[sid] = _Track(kind, self._clock())

    def remove(self, sid: str) -> None:
        """Forget ``sid`` (it ended); unknown SIDs are ignored."""
        self._tracks.pop(sid, None)

    def frame(self, sid: str, at_ns: int | None = None) -> None:
        """A frame of ``sid`` arrived; ``at_ns`` is its time (PTS, ns) if it has one, else it is timed now."""
        track = self._tracks.get(sid)
        if track is None:
            return
        track.frames += 1
        if track.kind != "video":
            return
        at = self._clock() if at_ns is None else at_ns
        last, track.last_ns = track.last_ns, at
        if last is None or at <= last:  # the first frame, or one out of order: no interval
            return
        interval, intervals = at - last, track.intervals
        if len(intervals) >= MIN_INTERVALS:
            mean = track.interval_sum / len(intervals)
            if interval >= max(3 * mean, mean + FREEZE_EXTRA_NS):
                track.freezes += 1
                track.freeze_ns += interval
                return
        if len(intervals) == intervals.maxlen:
            track.interval_sum -= intervals[0]
        intervals.append(interval)
        track.interval_sum += interval

    def gap(self, sid: str | None = None) -> None:
        """No frames of ``sid`` (None: of any track) are expected for a while (muted, paused): the interval
        across it is not timed."""
        for track in self._tracks.values() if sid is None else filter(None, [self._tracks.get(sid)]):
            track.last_ns = None

    def report(self) -> list[TrackReceive]:
        """Each track's totals, and its frame rate (Hz) since the previous report (or since it was added)."""
        now, out = self._clock(), []
        for sid, track in self._tracks.items():
            elapsed_s = (now - track.since_ns) / 1e9
            rate = (track.frames - track.reported) / elapsed_s if elapsed_s > 0 else 0.0
            track.reported, track.since_ns = track.frames, now
            out.append(TrackReceive(track_id=sid, kind=track.kind, frames=track.frames, frame_rate=round(rate, 2),
                                    freezes=track.freezes, freeze_ns=track.freeze_ns))
        return out
