"""The tick loop: video ticks and audio blocks against the media clock, until told to end.

It samples the picture at exactly ``framerate`` (the latest frame of each
track is shown; a late source repeats, a fast one drops) and pulls the mixer in
blocks. Output PTS are tick numbers (video) and sample counts (audio), so both
streams share one timeline and the outputs last exactly from the clock's start
to the end, whatever the sources do. While the clock is paused no tick is due.

A stream may run a fixed delay behind the clock: audio by the mixer's latency (what it holds
to absorb arrival jitter), and both, with a :class:`~.playout.Playout`, by its playout delay
(media placed by its own timestamps is composed once everything due has arrived). The picture
is asked for the media time of each tick. What is still due at the end is emitted then.
"""

from __future__ import annotations

import asyncio
from typing import Callable

from .clock import MediaClock


class Ticker:
    """Feeds ``thread`` (an :class:`~pyegress.media.encode.thread.EncoderThread`) from ``picture``
    (``compose() -> (frame, changed)``, or None: no video) and ``mixer`` (an
    :class:`~pyegress.media.compose.audio.AudioMixer`, or None: no audio) on ``clock``;
    ``on_progress(now_ns)`` every ``progress_interval_s``. Sync knows nothing downstream by import."""

    def __init__(self, clock: MediaClock, thread, *, picture, mixer,
                 framerate: int, sample_rate: int, audio_block: int, progress_interval_s: float,
                 on_progress: Callable[[int], None], delay_ns: int = 0) -> None:
        self.clock, self.thread = clock, thread
        self.picture, self.mixer = picture, mixer
        self.delay_ns = delay_ns  # both streams' playout delay (ns), besides the mixer's own latency
        self.framerate, self.sample_rate, self.block = framerate, sample_rate, audio_block
        self.progress_ns = int(progress_interval_s * 1e9)
        self.on_progress = on_progress
        self.dropped_frames = 0  # video frames skipped because the encoder fell behind

    async def run(self, ended: Callable[[int], bool]) -> int:
        """Emit ticks until ``ended(now_ns)`` (asked before each tick) is True; returns the end time in ns.

        Raises:
            Exception: the encoder thread's error.
        """
        thread, picture, mixer, clock = self.thread, self.picture, self.mixer, self.clock
        frame_ns = 1_000_000_000 / self.framerate
        rate, block = self.sample_rate, self.block
        video_delay = self.delay_ns
        audio_delay = self.delay_ns + (mixer.latency_ns if mixer is not None else 0)
        next_progress = self.progress_ns
        video_pts = audio_pts = 0
        while True:
            now = clock.elapsed_ns()
            if ended(now):
                break
            if thread.error is not None:
                raise thread.error
            if picture is not None:
                while video_pts * frame_ns + video_delay <= now:
                    if thread.backlogged:
                        # The encoder is behind real time: skip this frame rather than queue without
                        # bound. The PTS gap is held by players as the previous frame; sync is kept.
                        self.dropped_frames += 1
                    else:
                        frame, _ = picture.compose(int(video_pts * frame_ns))
                        thread.submit_video(frame, video_pts)
                    video_pts += 1
            if mixer is not None:
                while audio_pts * 1e9 / rate + audio_delay <= now:
                    thread.submit_audio(mixer.mix(block), audio_pts)
                    audio_pts += block
            if now >= next_progress:
                next_progress += self.progress_ns
                self.on_progress(now)
            next_video = video_pts * frame_ns + video_delay if picture is not None else float("inf")
            next_audio = audio_pts * 1e9 / rate + audio_delay if mixer is not None else float("inf")
            delay = (min(next_video, next_audio) - clock.elapsed_ns()) / 1e9
            await asyncio.sleep(max(delay, 0))  # an end is seen at the next tick (<= 20 ms)
        # What runs a delay behind is still due: video up to the end, audio up to the video's end.
        if picture is not None:
            while video_pts * frame_ns < now:
                frame, _ = picture.compose(int(video_pts * frame_ns))
                thread.submit_video(frame, video_pts)
                video_pts += 1
        audio_end = video_pts * frame_ns if picture is not None else now
        if mixer is not None and (picture is not None or self.delay_ns):
            while audio_pts * 1e9 / rate < audio_end:
                thread.submit_audio(mixer.mix(block), audio_pts)
                audio_pts += block
        # The outputs cover [0, end): whole frames and blocks already emitted define the end.
        ends = []
        if picture is not None:
            ends.append(int(video_pts * frame_ns))
        if mixer is not None:
            ends.append(int(audio_pts * 1e9 / rate))
        return max(ends) if ends else clock.elapsed_ns()
