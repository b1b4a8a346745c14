"""The pipeline of a web egress: a page in Chromium → the same clock, encoder and outputs as a room.

Only the source differs from :class:`~pyegress.media.pipeline.CompositePipeline`:
the tick loop samples the page's newest picture (:class:`~.web_source.PageVideo`)
instead of the compositor, and the mixer has one track, the page's sound.
The media clock starts when the page has loaded, or with
``await_start_signal`` when it logs ``START_RECORDING`` — at that moment, even
though the recording begins a little later, once a picture painted since has
arrived (:meth:`~.web_source.WebSource.wait_start`): the clock is backdated, so
a page's START_RECORDING → END_RECORDING span is the recording's duration.
"""

from __future__ import annotations

import asyncio
import logging

from ..contract.job import JobSpec
from .sync.clock import MediaClock
from .pipeline import CODE_INTERNAL, CompositePipeline
from .web_source import START_RECORDING, WebSource

log = logging.getLogger(__name__)

_PAGE = "page"  # the mixer's only track


class _BackdatedClock(MediaClock):
    """A media clock whose :meth:`start` puts its zero at ``since_s`` (wall s since the epoch) if that is
    earlier: the first frames are then emitted at once, showing the first picture."""

    since_s = 0.0

    def start(self) -> None:
        super().start()
        lag_ns = max(0, self.wall_start_ns - int(self.since_s * 1e9)) if self.since_s else 0
        self.t0_ns -= lag_ns
        self.wall_start_ns -= lag_ns


class WebPipeline(CompositePipeline):
    """Records ``spec.web_url`` as Chromium renders it into ``spec``'s outputs; see :class:`CompositePipeline`."""

    connect_error_code = CODE_INTERNAL  # a page that fails to load is no room connection

    def __init__(self, spec: JobSpec, emit) -> None:
        super().__init__(spec, emit)
        self.clock = _BackdatedClock()
        self.compositor = self.source.video
        if self.mixer is not None:
            self.mixer.add_track(_PAGE)

    def _open_source(self) -> WebSource:
        spec, enc = self.spec, self.spec.encoding
        return WebSource(spec.web_url, enc.width, enc.height, enc.framerate, video=spec.video, audio=spec.audio,
                         sample_rate=enc.audio_frequency, await_start_signal=spec.await_start_signal,
                         on_audio=lambda samples: self.mixer.push(_PAGE, samples))

    async def _connect(self) -> str:
        """Load the page and wait for its start signal; a stop meanwhile returns "" with the stop set, so
        the egress is aborted before it began."""
        try:
            await self.source.connect()
            started = asyncio.ensure_future(self.source.wait_start())
            stopped = asyncio.ensure_future(self._stop.wait())
            await asyncio.wait({started, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if not started.done():
                started.cancel()
                log.info("stopped before the page logged %s", START_RECORDING)
                return ""
            started.result()
            self.clock.since_s = self.source.started_s
            return ""
        except Exception as e:  # Chromium, PulseAudio or the page failed: the egress fails
            log.exception("web source failed")
            error = f"could not record {self.source.shown_url}: {e}"
        await self.source.close()
        return error

    def set_layout(self, name: str) -> None:
        # The page composites itself (a custom template got its layout in the URL); nothing to redraw here.
        log.info("layout %r: a web page lays itself out; ignored", name)

    def _present(self) -> bool:
        return True  # a page never "leaves"; it ends by StopEgress, END_RECORDING or a limit

    async def _tick_loop(self, thread) -> int:
        end_ns = await super()._tick_loop(thread)
        if self.source.failure:
            raise RuntimeError(self.source.failure)
        if self.source.video is not None:
            log.info("screencast: %s", self.source.video.stats())
        return end_ns
