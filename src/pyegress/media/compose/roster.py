"""Who a room composite shows, in which order: LiveKit's participant tiles (docs/layouts.md).

The roster follows the room's tracks (camera, screen share, microphone), their mute state and the active
speakers, and lists the tiles to draw:

- a screen share has a tile of its own; a camera has its participant's tile, with a placeholder while it is
  muted; a participant who publishes only sound (a phone guest, a voice agent) has a tile too, with a
  placeholder (LiveKit's template leaves them out);
- in LiveKit's order (``sortTrackReferences`` of @livekit/components-core): screen shares first, earliest
  publisher first; then participant tiles: speakers by level, then by when they last started speaking, then
  those who never spoke, cameras on before cameras off, in the order they came;
- :func:`update_pages` keeps tiles where they are when the order changes within a page (LiveKit's
  ``updatePages``), so a grid does not reshuffle each time someone speaks.

Times are ``time.monotonic()`` seconds; the caller passes ``now`` so tests control time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from livekit.protocol import models

#: How long (s) a speaking mark stays after its participant stops speaking (LiveKit's ring fades out 0.5 s
#: after the speaker update that ends it).
SPEAKING_HOLD_S = 0.5


@dataclass(frozen=True)
class Tile:
    """One tile to draw: ``key`` is its video track's SID, or ``participant:<identity>`` for a participant
    without a video track; ``kind`` ``"camera"``, ``"share"`` or ``"audio"`` (sound only); ``video_muted``: a
    camera that is muted shows a placeholder; ``mic_muted``: the name label shows a muted microphone
    (also when the participant publishes none); ``speaking``: the tile is highlighted."""

    key: str
    identity: str
    name: str
    kind: str
    video_muted: bool = False
    mic_muted: bool = True
    speaking: bool = False


@dataclass
class _Member:
    identity: str
    name: str
    order: int  # when it was first seen (LiveKit: joinedAt)
    camera: str | None = None
    camera_muted: bool = False
    shares: list[str] = field(default_factory=list)
    mics: dict[str, bool] = field(default_factory=dict)  # microphone SID → muted
    rank: int | None = None  # among the current speakers, 0 the loudest; None: not speaking
    last_spoke: float = 0.0  # when it last started speaking; 0: never
    quiet_since: float = 0.0  # when it stopped speaking

    @property
    def mic_muted(self) -> bool:
        return not any(not muted for muted in self.mics.values())

    def empty(self) -> bool:
        return self.camera is None and not self.shares and not self.mics


class Roster:
    """The participants a room composite shows and their tiles (:meth:`tiles`), fed with the tracks the
    source delivers (:meth:`add_track`, :meth:`remove_track`, :meth:`set_muted`) and the active speakers
    (:meth:`set_speakers`)."""

    def __init__(self) -> None:
        self._members: dict[str, _Member] = {}
        self._tracks: dict[str, tuple[str, str]] = {}  # SID → (identity, "camera" | "share" | "mic")
        self._seen = 0
        self.version = 0  # changes whenever tiles() may have

    def add_track(self, sid: str, identity: str, name: str, kind: str, source: int, muted: bool = False) -> None:
        """A track of ``identity`` (display ``name``) is recorded: ``kind`` ``"audio"``/``"video"``, ``source``
        livekit_models.proto ``TrackSource``. A video track other than a screen share counts as the camera
        (a participant has one camera tile; a second camera track replaces the first)."""
        member = self._members.get(identity)
        if member is None:
            member = self._members[identity] = _Member(identity, name or identity, self._seen)
            self._seen += 1
        elif name:
            member.name = name
        if kind == "video" and source == models.TrackSource.SCREEN_SHARE:
            role = "share"
            member.shares.append(sid)
        elif kind == "video":
            role = "camera"
            member.camera, member.camera_muted = sid, muted
        elif source == models.TrackSource.SCREEN_SHARE_AUDIO:
            return  # a share's sound is not the participant's voice
        else:
            role = "mic"
            member.mics[sid] = muted
        self._tracks[sid] = (identity, role)
        self.version += 1

    def remove_track(self, sid: str) -> None:
        """The track ended; a participant left with no track has no tile."""
        identity, role = self._tracks.pop(sid, (None, None))
        member = self._members.get(identity) if identity else None
        if member is None:
            return
        if role == "camera" and member.camera == sid:
            member.camera = None
        elif role == "share":
            member.shares.remove(sid)
        else:
            member.mics.pop(sid, None)
        if member.empty():
            del self._members[identity]
        self.version += 1

    def set_muted(self, sid: str, muted: bool) -> None:
        """The publisher muted (or unmuted) track ``sid``."""
        identity, role = self._tracks.get(sid, (None, None))
        member = self._members.get(identity) if identity else None
        if member is None:
            return
        if role == "camera":
            member.camera_muted = muted
        elif role == "mic":
            member.mics[sid] = muted
        self.version += 1

    def set_speakers(self, identities: list[str], now: float) -> None:
        """The active speakers, loudest first (livekit-server's SpeakersChanged, about every 400 ms)."""
        ranks = {identity: i for i, identity in enumerate(identities)}
        for member in self._members.values():
            rank = ranks.get(member.identity)
            if rank is not None and member.rank is None:
                member.last_spoke = now
            elif rank is None and member.rank is not None:
                member.quiet_since = now
            member.rank = rank
        self.version += 1

    def speaking(self, identity: str, now: float) -> bool:
        """Whether ``identity`` is speaking, or stopped less than :data:`SPEAKING_HOLD_S` ago."""
        member = self._members.get(identity)
        return member is not None and member.last_spoke > 0 and (
            member.rank is not None or now - member.quiet_since < SPEAKING_HOLD_S)

    def tiles(self, now: float) -> list[Tile]:
        """Every tile in LiveKit's order: screen shares (earliest publisher first), then one tile per
        participant sorted as ``sortTrackReferences`` sorts cameras: both speaking, the louder first; one
        speaking, it first; then the one that started speaking last; never spoke, a camera that is on
        first; then the order they came."""
        members = list(self._members.values())
        shares = [Tile(sid, m.identity, m.name, "share", mic_muted=m.mic_muted)
                  for m in sorted(members, key=lambda m: m.order) for sid in m.shares]

        def rank(m: _Member) -> tuple:
            speaking = m.rank is not None
            return (not speaking, m.rank if speaking else 0, -m.last_spoke,
                    not (m.camera is not None and not m.camera_muted), m.order)

        people = []
        for m in sorted(members, key=rank):
            if m.camera is None and not m.mics:
                continue  # shares only: their share tiles show them
            key, kind = (m.camera, "camera") if m.camera is not None else (f"participant:{m.identity}", "audio")
            people.append(Tile(key, m.identity, m.name, kind, video_muted=m.camera is not None and m.camera_muted,
                               mic_muted=m.mic_muted, speaking=self.speaking(m.identity, now)))
        return shares + people


def update_pages(current: list[str], sorted_keys: list[str], per_page: int) -> list[str]:
    """The new order of tile keys, from the order shown (``current``) and the sorted order (``sorted_keys``),
    keeping tiles in place as LiveKit's ``updatePages`` does (@livekit/components-core,
    ``tile-array-update``): on each page, tiles that must leave it swap places with those that must come onto
    it (a new one coming as another leaves takes its cell); tiles gone are dropped, new ones appended.
    ``per_page``: tiles on a page (the grid's most).
    """
    wanted = set(sorted_keys)
    order = list(current)
    if len(order) < len(sorted_keys):  # as LiveKit: only when tiles were added does the list grow first
        order += [k for k in sorted_keys if k not in current]
    for page in range(min(-(-len(order) // per_page), -(-len(sorted_keys) // per_page))):
        shown = order[page * per_page:(page + 1) * per_page]
        coming = sorted_keys[page * per_page:(page + 1) * per_page]
        dropped = [k for k in shown if k not in coming]
        added = [k for k in coming if k not in shown]
        if dropped and len(added) == len(dropped):
            for a, d in zip(added, dropped):
                j = order.index(d)
                if a in order:
                    i = order.index(a)
                    order[i], order[j] = order[j], order[i]
                else:  # one came as one left (a new speaker on the stage): it takes the cell of the one gone
                    order[j] = a  # (LiveKit throws here and falls back to the sorted order)
        elif dropped and not added:
            order = [k for k in order if k not in dropped]
        elif added and not dropped:
            order = [k for k in order if k not in added] + added
    order = [k for k in order if k in wanted]
    return order + [k for k in sorted_keys if k not in order]  # none lost where counts did not match
