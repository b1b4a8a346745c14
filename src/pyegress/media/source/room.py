"""Source: the room as seen by a hidden recorder participant, through the ``livekit`` rtc SDK.

The SDK gives decoded frames only (no encoded packets), so every egress
re-encodes. Video arrives as I420 (the SDK converts natively), audio as
interleaved int16 at the requested sample rate and channel count. Implements
:class:`~.base.Source`; which tracks it subscribes to is the
:class:`~.selection.TrackSelection`'s decision.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

import numpy as np
from livekit import rtc

from .base import CODE_ROOM_CONNECTION, Picture, SourceError, TrackRef, layout_from_metadata
from .health import ReceiveHealth

log = logging.getLogger(__name__)

#: How long joining the room may take before the egress fails
CONNECT_TIMEOUT_S = 20


#: Disconnect reasons that end a recording normally (livekit_models.proto ``DisconnectReason``): the
#: room was closed or deleted, the recorder removed, or we left.
_ROOM_ENDED = frozenset({rtc.DisconnectReason.CLIENT_INITIATED, rtc.DisconnectReason.ROOM_DELETED,
                         rtc.DisconnectReason.ROOM_CLOSED, rtc.DisconnectReason.PARTICIPANT_REMOVED})


class RoomSource:
    """Joins a room and feeds every matching remote track into callbacks.

    ``want(publication, participant)`` decides which tracks are subscribed,
    ``gains(sid, participant)`` where an audio track is heard (:class:`~.selection.TrackSelection`).
    Callbacks run on the event loop:

    - ``on_track(ref)`` when a track starts, ``on_track_ended(ref)`` when it goes;
    - ``on_video(ref, frame)`` with ``rtc.VideoFrame`` in I420;
    - ``on_audio(ref, samples)`` with ``(n, channels) int16`` samples, ``audio_frame_ms`` ms at a time
      (each audio frame is one event crossing from the SDK's native threads into Python, the main cost
      of receiving audio: 20 ms frames cost 0.070 core for 4 tracks, 100 ms frames 0.050);
    - ``on_speakers(identities)`` active speakers, loudest first;
    - ``on_muted(sid, muted)`` when a subscribed track's publisher mutes or unmutes it;
    - ``on_layout(name)`` when livekit-server's UpdateLayout sets the recorder's own metadata to
      ``{"layout": ...}`` (livekit pkg/service/egress.go).

    ``closed`` is set when the room disconnects (room deleted, kicked, network); ``closed_reason`` says so,
    and ``connection_failed`` tells a lost connection (the SDK gave up reconnecting) from the room ending.
    ``reconnecting`` is True while the SDK re-establishes the connection; ``reconnects`` lists each
    such gap (ns) once it is over. :meth:`pause` stops reading media until :meth:`resume`. ``health`` counts
    each track's frames (timed by their arrival).
    With ``whole_room`` (room composite) the recording lasts while anybody is in the room, otherwise
    while a selected track is subscribed (:meth:`present`).
    """

    picture: Picture | None = None  # the pipeline composes the room's video tracks
    started_s = 0.0  # the timeline starts when the room is joined
    failure = ""  # a room's end is told by closed_reason and connection_failed

    def __init__(self, url: str, token: str, *, want: Callable[[rtc.RemoteTrackPublication, rtc.RemoteParticipant], bool],
                 sample_rate: int = 48000, channels: int = 2, audio_frame_ms: int = 20,
                 on_track: Callable[[TrackRef], None] = lambda ref: None,
                 on_track_ended: Callable[[TrackRef], None] = lambda ref: None,
                 on_video: Callable[[TrackRef, rtc.VideoFrame], None] = lambda ref, f: None,
                 on_audio: Callable[[TrackRef, np.ndarray], None] = lambda ref, s: None,
                 on_speakers: Callable[[list[str]], None] = lambda ids: None,
                 on_muted: Callable[[str, bool], None] = lambda sid, muted: None,
                 on_layout: Callable[[str], None] = lambda name: None,
                 gains: Callable[[str, rtc.RemoteParticipant | None], tuple[float, float] | None] = lambda sid, p: None,
                 whole_room: bool = True, room_name: str = "") -> None:
        self.url, self.token, self.room_name = url, token, room_name
        self.want, self.gains = want, gains
        self.whole_room = whole_room
        self.presence = "every participant" if whole_room else "what this egress records"
        self.sample_rate, self.channels = sample_rate, channels
        self.audio_frame_ms = audio_frame_ms
        self.on_track, self.on_track_ended = on_track, on_track_ended
        self.on_video, self.on_audio, self.on_speakers = on_video, on_audio, on_speakers
        self.on_muted = on_muted
        self.on_layout = on_layout
        self.room = rtc.Room()
        self.closed = asyncio.Event()
        self.closed_reason = "room closed"
        self.connection_failed = False
        self.reconnecting = False
        self.reconnects: list[int] = []
        self._reconnecting_since = 0
        self._tracks: dict[str, tuple[TrackRef, rtc.Track]] = {}  # subscribed tracks by SID
        self._tasks: dict[str, asyncio.Task] = {}  # their readers, while not paused
        self._paused = False
        self.room_sid = ""
        self.health = ReceiveHealth()

    async def start(self, stop: asyncio.Event) -> None:
        """Join the room (within :data:`CONNECT_TIMEOUT_S`); see :meth:`connect`.

        Raises:
            SourceError: it could not be joined (error_code 503).
        """
        try:
            await asyncio.wait_for(self.connect(), timeout=CONNECT_TIMEOUT_S)
        except Exception as e:  # connection errors of every kind end as a failed egress
            raise SourceError(f"could not join room {self.room_name!r}: {e}", CODE_ROOM_CONNECTION) from e

    async def connect(self) -> None:
        """Join the room and subscribe to what is already published.

        Raises:
            rtc.ConnectError: the server refused the connection.
        """
        room = self.room
        room.on("track_published", self._on_published)
        room.on("track_subscribed", self._on_subscribed)
        room.on("track_unsubscribed", lambda track, pub, p: self._end(pub.sid))
        room.on("track_unpublished", lambda pub, p: self._end(pub.sid))
        room.on("participant_disconnected", self._on_participant_left)
        room.on("active_speakers_changed", lambda speakers: self.on_speakers([p.identity for p in speakers]))
        room.on("disconnected", self._on_disconnected)
        room.on("reconnecting", self._on_reconnecting)
        room.on("reconnected", self._on_reconnected)
        room.on("participant_metadata_changed", self._on_metadata)
        room.on("track_muted", lambda participant, pub: self._on_muted(pub.sid, True))
        room.on("track_unmuted", lambda participant, pub: self._on_muted(pub.sid, False))
        await room.connect(self.url, self.token, rtc.RoomOptions(auto_subscribe=False))
        self.room_sid = await room.sid
        for participant in room.remote_participants.values():
            for pub in participant.track_publications.values():
                self._on_published(pub, participant)

    def _on_disconnected(self, reason: int) -> None:
        name = rtc.DisconnectReason.Name(reason) if reason in rtc.DisconnectReason.values() else str(reason)
        self.closed_reason = f"disconnected ({name})"
        # The room or this recorder was ended on purpose; anything else means the connection was lost.
        self.connection_failed = reason not in _ROOM_ENDED
        self.reconnecting = False
        self.closed.set()

    def _on_reconnecting(self) -> None:
        log.warning("room connection lost; reconnecting")
        self.reconnecting, self._reconnecting_since = True, time.monotonic_ns()

    def _on_reconnected(self) -> None:
        if self.reconnecting:
            gap = time.monotonic_ns() - self._reconnecting_since
            self.reconnects.append(gap)
            log.warning("room connection regained after %.1f s", gap / 1e9)
        self.reconnecting = False

    def _on_metadata(self, participant: rtc.Participant, old: str, new: str) -> None:
        if participant.identity != self.room.local_participant.identity:
            return
        try:
            if layout := layout_from_metadata(new):
                self.on_layout(layout)
        except ValueError as e:
            log.warning("ignoring recorder metadata %r: %s", new[:200], e)

    @property
    def publisher_count(self) -> int:
        """Remote participants currently in the room (hidden ones are not visible to us)."""
        return len(self.room.remote_participants)

    def present(self) -> bool:
        return self.publisher_count > 0 if self.whole_room else bool(self._tracks)

    def _on_published(self, pub: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant) -> None:
        if self.want(pub, participant):
            pub.set_subscribed(True)

    def _on_subscribed(self, track: rtc.Track, pub: rtc.RemoteTrackPublication,
                       participant: rtc.RemoteParticipant) -> None:
        if pub.sid in self._tracks or not self.want(pub, participant):
            return
        kind = "video" if track.kind == rtc.TrackKind.KIND_VIDEO else "audio"
        gains = self.gains(pub.sid, self.room.remote_participants.get(participant.identity)) if kind == "audio" else None
        ref = TrackRef(pub.sid, kind, pub.source, participant.identity, participant.sid, gains,
                       participant_name=participant.name, muted=pub.muted)
        self._tracks[pub.sid] = (ref, track)
        self.health.add(pub.sid, kind)
        self.on_track(ref)
        if not self._paused:
            self._read(pub.sid)

    def _on_muted(self, sid: str, muted: bool) -> None:
        if sid in self._tracks:
            self.health.gap(sid)
            self.on_muted(sid, muted)

    def _read(self, sid: str) -> None:
        ref, track = self._tracks[sid]
        reader = self._read_video if ref.kind == "video" else self._read_audio
        self._tasks[sid] = asyncio.create_task(reader(ref, track), name=f"track-{sid}")

    def _on_participant_left(self, participant: rtc.RemoteParticipant) -> None:
        for sid in [s for s, (ref, _) in self._tracks.items() if ref.participant_sid == participant.sid]:
            self._end(sid)

    def _end(self, sid: str) -> None:
        task = self._tasks.pop(sid, None)
        if task is not None:
            task.cancel()
        entry = self._tracks.pop(sid, None)
        if entry is not None:
            self.health.remove(sid)
            self.on_track_ended(entry[0])

    def pause(self) -> None:
        """Stop reading media: every track's SDK stream is closed, so what arrives meanwhile, or was
        still queued for a busy event loop, is discarded instead of being delivered after :meth:`resume`.
        Tracks stay subscribed."""
        self._paused = True
        for task in self._tasks.values():
            task.cancel()
        self._tasks.clear()

    def resume(self) -> None:
        """Read every subscribed track again, from live media on."""
        self._paused = False
        self.health.gap()
        for sid in self._tracks:
            if sid not in self._tasks:
                self._read(sid)

    async def _read_video(self, ref: TrackRef, track: rtc.Track) -> None:
        stream = rtc.VideoStream(track, format=rtc.VideoBufferType.I420, capacity=2)
        try:
            async for event in stream:
                self.health.frame(ref.sid)
                self.on_video(ref, event.frame)
        finally:
            await stream.aclose()

    async def _read_audio(self, ref: TrackRef, track: rtc.Track) -> None:
        stream = rtc.AudioStream(track, sample_rate=self.sample_rate, num_channels=self.channels,
                                 frame_size_ms=self.audio_frame_ms)
        try:
            async for event in stream:
                f = event.frame
                self.health.frame(ref.sid)
                self.on_audio(ref, np.frombuffer(f.data, dtype=np.int16).reshape(-1, self.channels).copy())
        finally:
            await stream.aclose()

    async def close(self) -> None:
        for sid in list(self._tracks):
            self._end(sid)
        await self.room.disconnect()
