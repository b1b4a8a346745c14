"""What the pipeline asks of a source, and what a source gives the pipeline.

A :class:`Source` is where an egress's media comes from: a room joined through
the ``livekit`` SDK (:mod:`.room`), a web page rendered by Chromium
(:mod:`.web`), or a room through the packet receiver (:mod:`.packets`). The pipeline
(:mod:`pyegress.media.pipeline`) drives any of them the same way: :meth:`Source.start`,
then it records until :attr:`Source.closed` is set, :meth:`Source.present` stays
False for too long, or it is stopped; then :meth:`Source.close`.

Media reaches the pipeline through a :class:`MediaSink`: tracks as they come and
go, video as I420 pictures, audio as int16 samples; or, from the packet receiver,
through a :class:`PacketSink` as encoded samples. A source that composes its own
picture (a web page lays itself out) offers it as :attr:`Source.picture` instead
of delivering video tracks.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Protocol

import av
import numpy as np

from .health import ReceiveHealth

#: EgressInfo.error_code of an egress that lost, or never got, its room connection (LiveKit: 503)
CODE_ROOM_CONNECTION = 503
CODE_INTERNAL = 500


class SourceError(Exception):
    """The source could not start: ``str(error)`` is the egress's error, :attr:`code` its error_code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class TrackRef:
    """A track the source delivers: its SID, kind (``"audio"``/``"video"``), source (livekit_models.proto
    ``TrackSource``) and publisher; for audio, ``gains`` per output channel (None: both, unchanged) as the
    track selection (:mod:`.selection`) placed it; ``codec`` of encoded samples (``"vp8"``, ``"vp9"``,
    ``"h264"``, ``"av1"``, ``"opus"``), "" when the source delivers decoded media; ``participant_name`` the
    publisher's display name ("" if none); ``muted``: muted by its publisher when subscribed (later changes
    come as ``on_muted``)."""

    sid: str
    kind: str
    source: int
    participant_identity: str
    participant_sid: str
    gains: tuple[float, float] | None = None
    codec: str = ""
    participant_name: str = ""
    muted: bool = False


class I420Frame(Protocol):
    """A decoded picture: tightly packed I420 ``data`` of ``width`` x ``height`` pixels (``rtc.VideoFrame`` is one)."""

    data: memoryview | bytes
    width: int
    height: int


class Picture(Protocol):
    """A picture the tick loop samples: :meth:`compose` returns ``(av.VideoFrame yuv420p, changed)``."""

    def compose(self, at_ns: int | None = None) -> tuple[av.VideoFrame, bool]:
        """The picture at media time ``at_ns`` (ns on the media clock; None: now); a live source shows
        its newest."""

    def set_layout(self, name: str) -> None: ...


class MediaSink(Protocol):
    """Where a source delivers media (the pipeline). Called on the event loop; must not block."""

    def on_track(self, ref: TrackRef) -> None: ...

    def on_track_ended(self, ref: TrackRef) -> None: ...

    def on_video(self, ref: TrackRef, frame: I420Frame) -> None: ...

    def on_audio(self, ref: TrackRef, samples: np.ndarray) -> None:
        """``samples``: ``(n, channels) int16`` at the egress's sample rate."""

    def on_speakers(self, identities: list[str]) -> None:
        """Active speakers, loudest first."""

    def on_muted(self, sid: str, muted: bool) -> None:
        """The publisher muted (or unmuted) delivered track ``sid``."""

    def set_layout(self, name: str) -> None:
        """Switch layout (raises ValueError for an unknown name)."""


class PacketSink(Protocol):
    """Where a packet source delivers encoded samples (``packets.stream.Sample``). Called on the event
    loop; must not block."""

    def on_track(self, ref: TrackRef) -> None: ...

    def on_track_ended(self, ref: TrackRef) -> None: ...

    def on_sample(self, ref: TrackRef, sample) -> None: ...

    def on_speakers(self, identities: list[str]) -> None: ...

    def on_muted(self, sid: str, muted: bool) -> None: ...

    def set_layout(self, name: str) -> None:
        """Switch layout (raises ValueError for an unknown name)."""


def layout_from_metadata(metadata: str) -> str | None:
    """The layout livekit-server's UpdateLayout asks for: it sets the recorder participant's own
    metadata to ``{"layout": ...}`` (livekit pkg/service/egress.go). None when the metadata names none.

    Raises ValueError when the metadata is not a JSON object."""
    data = json.loads(metadata or "{}")
    if not isinstance(data, dict):
        raise ValueError("recorder metadata is not a JSON object")
    return data.get("layout") or None


class Source(Protocol):
    """Where an egress's media comes from.

    - ``closed`` is set when the recording should end by itself (room ended, page logged END_RECORDING,
      the browser died), with ``closed_reason``; ``failure`` is set when that end is an error.
    - ``connection_failed``: the end was a lost connection (error_code 503); ``reconnecting`` is True
      while a connection is being re-established (nobody counts as gone meanwhile); ``reconnects``
      lists each such gap (ns) once it is over.
    - ``started_s``: wall time (s since the epoch) where the recording's timeline begins, if earlier
      than the moment :meth:`start` returns (the media clock is backdated to it); 0: that moment.
    - ``picture``: the source's own composed picture, or None: its video tracks are composed.
    - ``room_sid``: the room's SID for EgressInfo, "" if there is no room.
    - ``presence``: what must stay for the recording to go on, for the log ("every participant").
    - ``health``: each delivered track's receive health (:mod:`.health`), reported with progress.
    """

    closed: asyncio.Event
    closed_reason: str
    failure: str
    connection_failed: bool
    reconnecting: bool
    reconnects: list[int]
    started_s: float
    picture: Picture | None
    room_sid: str
    presence: str
    health: ReceiveHealth

    async def start(self, stop: asyncio.Event) -> None:
        """Connect and wait until media can be recorded, or until ``stop`` is set (then return: the
        egress is aborted before it began).

        Raises:
            SourceError: the source could not be reached; the egress fails with its message and code.
        """

    def present(self) -> bool:
        """Whether what this egress records is still there (it ends by itself once gone for a while)."""

    def pause(self) -> None:
        """Drop media until :meth:`resume`."""

    def resume(self) -> None: ...

    async def close(self) -> None: ...
