"""The media clock: one monotonic timeline per egress, shared by audio and video."""

from __future__ import annotations

import time


class MediaClock:
    """Monotonic nanoseconds of recorded time since :meth:`start`, with the wall-clock time of the start.

    Audio and video PTS are both derived from this clock, which is what keeps
    them in sync: a frame's PTS is the time it was shown, not when it was sent.
    While :meth:`pause` d the clock stands still, so the outputs' timeline has no
    gap: what follows a :meth:`resume` continues from the PTS where it stopped.
    """

    def __init__(self) -> None:
        self.t0_ns = 0
        self.wall_start_ns = 0
        self.paused_ns = 0  # total time spent paused (ended pauses), ns
        self._paused_at: int | None = None  # monotonic ns of the current pause's start

    def start(self, since_s: float = 0.0) -> None:
        """Start the timeline now, or at ``since_s`` (wall s since the epoch) if that is earlier: a source
        whose timeline began before its media could be recorded (a web page's start signal) backdates
        it, and the first ticks are then due at once, showing the first picture."""
        self.t0_ns = time.monotonic_ns()
        self.wall_start_ns = time.time_ns()
        lag_ns = max(0, self.wall_start_ns - int(since_s * 1e9)) if since_s else 0
        self.t0_ns -= lag_ns
        self.wall_start_ns -= lag_ns

    @property
    def paused(self) -> bool:
        return self._paused_at is not None

    def pause(self) -> None:
        """Stop the timeline (no-op if already paused)."""
        if self._paused_at is None:
            self._paused_at = time.monotonic_ns()

    def resume(self) -> None:
        """Let the timeline run again from where it stood (no-op unless paused)."""
        if self._paused_at is not None:
            self.paused_ns += time.monotonic_ns() - self._paused_at
            self._paused_at = None

    def elapsed_ns(self) -> int:
        """Recorded time: ns since :meth:`start`, less every pause."""
        now = self._paused_at if self._paused_at is not None else time.monotonic_ns()
        return now - self.t0_ns - self.paused_ns

    def wall_ns(self, elapsed_ns: int) -> int:
        """The Unix time in ns of a point ``elapsed_ns`` into the timeline (after the pauses so far)."""
        current = time.monotonic_ns() - self._paused_at if self._paused_at is not None else 0
        return self.wall_start_ns + elapsed_ns + self.paused_ns + current
