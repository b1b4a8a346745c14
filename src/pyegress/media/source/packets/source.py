"""Source: the room through the packet receiver, with encoded samples on LiveKit's sync timeline.

:class:`PacketSource` implements :class:`~..base.Source`. It starts the Go receiver
(:mod:`.stream`), learns the room's participants and publications from its events, asks
it to subscribe to what the :class:`~..selection.TrackSelection` wants, and hands each
subscribed track's samples to a :class:`~..base.PacketSink` in the order they come,
keyframes flagged, at PTS from the sync engine (RTCP sender reports align a participant's
audio and video; every track shares one session timeline).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from livekit import rtc

from ..base import CODE_ROOM_CONNECTION, PacketSink, Picture, SourceError, TrackRef, layout_from_metadata
from ..health import ReceiveHealth
from ..selection import TrackSelection
from .binary import ReceiverUnavailable
from .stream import ReceiverProcess, Sample, StreamError

log = logging.getLogger(__name__)

#: How long joining the room may take before the egress fails
CONNECT_TIMEOUT_S = 20
#: How long (ms) the receiver's jitter buffer waits for a lost packet's retransmission when a composite
#: decodes the samples: under the playout delay (sync/playout.py), so a repaired sample is still in time.
COMPOSITE_JITTER_MS = 250
#: How long (ms) the receiver may hold samples to send them together when nothing is shown live (no
#: video, no websocket listener): a few wakeups a second instead of one per 20 ms; with the jitter wait
#: still under the playout delay (sync/playout.py).
BULK_FLUSH_MS = 100
#: After a reconnection, how long a track lost with the connection may take to come back: a publisher
#: that rejoins a restarted livekit-server publishes it again under a new SID.
REPUBLISH_GRACE_S = 15.0
#: Disconnect reasons that end a recording normally (livekit_models.proto ``DisconnectReason``).
_ROOM_ENDED = frozenset({rtc.DisconnectReason.CLIENT_INITIATED, rtc.DisconnectReason.ROOM_DELETED,
                         rtc.DisconnectReason.ROOM_CLOSED, rtc.DisconnectReason.PARTICIPANT_REMOVED})
_KINDS = {"audio": rtc.TrackKind.KIND_AUDIO, "video": rtc.TrackKind.KIND_VIDEO}


@dataclass
class Participant:
    """A remote participant as the receiver reports it (the attributes TrackSelection reads)."""

    identity: str
    sid: str
    name: str = ""
    kind: int = 0  # livekit_models.proto ParticipantInfo.Kind


@dataclass
class Publication:
    """A remote track publication as the receiver reports it: ``kind`` an ``rtc.TrackKind``, ``source``
    livekit_models.proto ``TrackSource``, ``mime`` e.g. ``video/VP8``, ``width``/``height`` px."""

    sid: str
    kind: int
    source: int
    mime: str
    identity: str
    participant_sid: str
    muted: bool = False
    width: int = 0
    height: int = 0


class PacketSource:
    """Joins a room through the receiver and delivers the selected tracks' samples to ``sink``.

    ``closed`` is set when the room disconnects or the receiver exits; a receiver that exits on its own
    sets ``failure`` (the egress fails with it). With ``whole_room`` the recording lasts while anybody is
    in the room, otherwise while a selected track is subscribed (:meth:`present`). ``jitter_ms`` and
    ``flush_ms`` go to the receiver (:class:`.stream.ReceiverProcess`). ``health`` counts each track's samples,
    paused or not, and times video by their PTS.
    """

    picture: Picture | None = None
    started_s = 0.0

    def __init__(self, url: str, token: str, *, selection: TrackSelection, sink: PacketSink,
                 room_name: str = "", jitter_ms: int = 500, flush_ms: int = 0) -> None:
        self.selection, self.sink, self.room_name = selection, sink, room_name
        self.whole_room = selection.whole_room
        self.presence = "every participant" if self.whole_room else "what this egress records"
        self.receiver = ReceiverProcess(url, token, jitter_ms=jitter_ms, flush_ms=flush_ms,
                                        audio_only=not selection.spec.video)
        self.closed = asyncio.Event()
        self.closed_reason = "room closed"
        self.failure = ""
        self.connection_failed = False
        self.reconnecting = False
        self.reconnects: list[int] = []
        self.room_sid = ""
        #: Unix ns of the sync engine's session start: a sample's wall time is this plus its PTS
        self.session_start_ns = 0
        self.participants: dict[str, Participant] = {}  # by SID
        self.publications: dict[str, Publication] = {}  # by track SID
        self._tracks: dict[int, TrackRef] = {}  # subscribed, by the receiver's track number
        self._connected = asyncio.Event()  # the room was joined, or could not be (then _connect_error)
        self._connect_error = ""
        self._reader: asyncio.Task | None = None
        self._reconnecting_since = 0
        # tracks that ended with the connection, by (publisher identity, source, kind) → until when
        # (monotonic s; None while still reconnecting) their republication is taken in their place
        self._lost: dict[tuple[str, int, str], float | None] = {}
        self._closing = False
        self._paused = False
        self.health = ReceiveHealth()

    async def start(self, stop: asyncio.Event) -> None:
        """Start the receiver and wait until it has joined the room.

        Raises:
            SourceError: the receiver is unavailable (error_code 500) or the room could not be joined (503).
        """
        try:
            await self.receiver.start()
        except (ReceiverUnavailable, OSError) as e:
            raise SourceError(f"packet receiver unavailable: {e}", 500) from e
        self._reader = asyncio.create_task(self._read(), name="receiver")
        try:
            await asyncio.wait_for(self._connected.wait(), CONNECT_TIMEOUT_S)
            error = self._connect_error
        except asyncio.TimeoutError:
            error = f"no connection within {CONNECT_TIMEOUT_S} s"
        if error:
            await self.close()
            raise SourceError(f"could not join room {self.room_name!r}: {error}", CODE_ROOM_CONNECTION)

    def present(self) -> bool:
        """Whether anybody is in the room (whole room), else whether a selected track is subscribed or
        one lost with the connection may still come back (:data:`REPUBLISH_GRACE_S`)."""
        if self.whole_room:
            return bool(self.participants)
        now = time.monotonic()
        return bool(self._tracks) or any(until is None or now < until for until in self._lost.values())

    def pause(self) -> None:
        """Drop samples until :meth:`resume` (tracks stay subscribed)."""
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    def set_dimensions(self, sid: str, width: int, height: int) -> None:
        """Ask the SFU for the simulcast layer of ``sid`` that fits ``width`` x ``height`` px (0: the highest)."""
        self.receiver.send("dimensions", sid, width=width, height=height)

    def request_keyframe(self, sid: str) -> None:
        """Ask the publisher of video track ``sid`` for a keyframe (a PLI, repeated until one comes)."""
        self.receiver.send("keyframe", sid)

    async def close(self) -> None:
        """Leave the room; returns once the receiver has exited and its last samples were delivered."""
        self._closing = True
        await self.receiver.close()
        if self._reader is not None:
            try:
                await asyncio.wait_for(self._reader, 5)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self._reader.cancel()

    # ---- the receiver's frames ---------------------------------------------
    async def _read(self) -> None:
        try:
            while (frames := await self.receiver.read()) is not None:
                for frame in frames:
                    if isinstance(frame, Sample):
                        ref = self._tracks.get(frame.track)
                        if ref is None:
                            continue
                        self.health.frame(ref.sid, frame.pts_ns)
                        if not self._paused:
                            self.sink.on_sample(ref, frame)
                    else:
                        self._on_event(frame)
        except StreamError as e:
            self._fail(f"packet receiver: {e}")
        if not self._closing:
            self._fail(f"packet receiver exited (code {self.receiver.returncode})")
        for ref in list(self._tracks.values()):
            self.health.remove(ref.sid)
            self.sink.on_track_ended(ref)
        self._tracks.clear()
        self._joined(self.failure or "the receiver exited")
        self.closed.set()

    def _joined(self, error: str) -> None:
        """The first outcome of joining counts: "" joined, else why not."""
        if not self._connected.is_set():
            self._connect_error = error
            self._connected.set()

    def _fail(self, why: str) -> None:
        if not self.failure:
            log.error("%s", why)
            self.failure, self.closed_reason = why, why

    def _on_event(self, e: dict) -> None:
        name = e.get("event")
        if name == "connected":
            self._joined("")
        elif name == "failed":
            self.connection_failed = True
            self._joined(e.get("error", "failed"))
        elif name == "room":
            self.room_sid = e.get("sid", "")
        elif name == "started":
            self.session_start_ns = int(e["unix_ns"])
        elif name == "participant":
            self.participants[e["sid"]] = Participant(e["identity"], e["sid"], e.get("name", ""), e.get("kind", 0))
        elif name == "participant_left":
            self.participants.pop(e["sid"], None)
        elif name == "published":
            self._on_published(e)
        elif name == "unpublished":
            self.publications.pop(e["sid"], None)
        elif name == "muted":
            if (pub := self.publications.get(e["sid"])) is not None:
                pub.muted = bool(e["muted"])
                self.health.gap(pub.sid)
                if any(ref.sid == pub.sid for ref in self._tracks.values()):
                    self.sink.on_muted(pub.sid, pub.muted)
        elif name == "track":
            self._on_track(e)
        elif name == "track_ended":
            if (ref := self._tracks.pop(e["track"], None)) is not None:
                if self.reconnecting:
                    self._lost[(ref.participant_identity, ref.source, ref.kind)] = None
                self.health.remove(ref.sid)
                self.sink.on_track_ended(ref)
        elif name == "speakers":
            self.sink.on_speakers(list(e.get("identities") or []))
        elif name == "metadata":
            try:
                if layout := layout_from_metadata(e.get("metadata", "")):
                    self.sink.set_layout(layout)
            except ValueError as err:
                log.warning("ignoring recorder metadata: %s", err)
        elif name == "reconnecting":
            log.warning("room connection lost; reconnecting")
            self.reconnecting, self._reconnecting_since = True, time.monotonic_ns()
        elif name == "reconnected":
            if self.reconnecting:
                self.reconnects.append(time.monotonic_ns() - self._reconnecting_since)
            self.reconnecting = False
            until = time.monotonic() + REPUBLISH_GRACE_S
            self._lost = {key: until if t is None else t for key, t in self._lost.items()}
        elif name == "disconnected":
            code = e.get("code", -1)
            self.closed_reason = f"disconnected ({e.get('reason', '')})"
            self.connection_failed = code not in _ROOM_ENDED and not self._closing
            self.reconnecting = False
            self.closed.set()
        elif name == "error":
            log.warning("receiver: track %s: %s", e.get("sid", ""), e.get("error", ""))

    def _on_published(self, e: dict) -> None:
        kind = _KINDS.get(e.get("kind", ""))
        if kind is None:
            return
        pub = Publication(e["sid"], kind, e.get("source", 0), e.get("mime", ""), e["identity"], e["participant_sid"],
                          bool(e.get("muted")), e.get("width", 0), e.get("height", 0))
        known = pub.sid in self.publications
        self.publications[pub.sid] = pub
        participant = self.participants.get(pub.participant_sid) \
            or Participant(pub.identity, pub.participant_sid, kind=e.get("participant_kind", 0))
        if not known and (self.selection.wants(pub, participant) or self._republished(pub)):
            self.receiver.send("subscribe", pub.sid)

    def _republished(self, pub: Publication) -> bool:
        """Whether ``pub`` is a track lost with the connection, published again (same publisher, source
        and kind) within the grace; it is then recorded in its place."""
        kind = "video" if pub.kind == rtc.TrackKind.KIND_VIDEO else "audio"
        until = self._lost.get((pub.identity, pub.source, kind), 0.0)
        if until is None or until > time.monotonic():  # it stays lost (present) until its track arrives
            log.info("track %s replaces the %s %s of %s lost with the connection", pub.sid, kind, pub.source,
                     pub.identity)
            return True
        return False

    def _on_track(self, e: dict) -> None:
        pub = self.publications.get(e["sid"])
        if pub is None:
            return
        kind = "video" if pub.kind == rtc.TrackKind.KIND_VIDEO else "audio"
        participant = self.participants.get(pub.participant_sid)
        gains = self.selection.gains(pub.sid, participant) if kind == "audio" else None
        ref = TrackRef(pub.sid, kind, pub.source, pub.identity, pub.participant_sid, gains, codec=e["codec"],
                       participant_name=participant.name if participant else "", muted=pub.muted)
        self._tracks[int(e["track"])] = ref
        self._lost.pop((pub.identity, pub.source, kind), None)
        self.health.add(ref.sid, kind)
        self.sink.on_track(ref)
