"""The media clock: one monotonic timeline per egress, shared by audio and video."""

from __future__ import annotations

import time


class MediaClock:
    """Monotonic nanoseconds since :meth:`start`, with the wall-clock time of the start.

    Audio and video PTS are both derived from this clock, which is what keeps
    them in sync: a frame's PTS is the time it was shown, not when it was sent.
    """

    def __init__(self) -> None:
        self.t0_ns = 0
        self.wall_start_ns = 0

    def start(self) -> None:
        self.t0_ns = time.monotonic_ns()
        self.wall_start_ns = time.time_ns()

    def elapsed_ns(self) -> int:
        return time.monotonic_ns() - self.t0_ns

    def wall_ns(self, elapsed_ns: int) -> int:
        """The Unix time in ns of a point ``elapsed_ns`` into the timeline."""
        return self.wall_start_ns + elapsed_ns
