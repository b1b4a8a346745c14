"""Which of a room's tracks an egress records, and where each audio track is heard.

Built from the :class:`~pyegress.contract.job.JobSpec`: room composite takes
every track, participant egress one participant's camera and microphone (or
screen share and its audio), track composite and track egress tracks by SID,
and the unified ``StartEgress`` ``media`` source a video by SID or participant
plus audio by routes (LiveKit's ``AudioRoute``: by track, participant or
participant kind, each to both channels or one). ``audio_mixing``
(room composite, LiveKit's ``AudioMixing``) puts agents left and everyone else
right, or alternates tracks between the channels.

Publications and participants are the ``livekit`` rtc SDK's
(``RemoteTrackPublication``: ``sid``, ``kind``, ``source``;
``RemoteParticipant``: ``identity``, ``kind``); another receiver passes
objects with the same attributes.
"""

from __future__ import annotations

from livekit import rtc

from ...contract.job import AudioRoute, JobSpec

_CHANNEL_GAINS = {"both": (1.0, 1.0), "left": (1.0, 0.0), "right": (0.0, 1.0)}
_AGENT = rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
_CAMERA = (rtc.TrackSource.SOURCE_CAMERA, rtc.TrackSource.SOURCE_MICROPHONE)
_SCREEN = (rtc.TrackSource.SOURCE_SCREENSHARE, rtc.TrackSource.SOURCE_SCREENSHARE_AUDIO)


class TrackSelection:
    """The tracks ``spec`` records: :meth:`wants` decides per publication, :meth:`gains` places audio."""

    def __init__(self, spec: JobSpec) -> None:
        self.spec = spec
        #: a room composite records the whole room: it lasts while anybody is in it
        self.whole_room = spec.source == "room_composite"
        self._audio_tracks_seen = 0  # for audio_mixing dual_channel_alternate

    def wants(self, pub: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant) -> bool:
        is_video = pub.kind == rtc.TrackKind.KIND_VIDEO
        spec = self.spec
        if not (spec.video if is_video else spec.audio):
            return False
        if spec.source == "participant":
            return participant.identity == spec.identity and pub.source in (_SCREEN if spec.screen_share else _CAMERA)
        if spec.source == "track_composite":
            return pub.sid == (spec.video_track_id if is_video else spec.audio_track_id)
        if spec.source == "track":
            return pub.sid == spec.track_id
        if spec.source == "media":
            if is_video:
                if spec.video_track_id:
                    return pub.sid == spec.video_track_id
                wanted = rtc.TrackSource.SOURCE_SCREENSHARE if spec.screen_share else rtc.TrackSource.SOURCE_CAMERA
                return participant.identity == spec.identity and pub.source == wanted
            return spec.capture_all_audio or self._route(pub.sid, participant) is not None
        return True

    def gains(self, sid: str, participant: rtc.RemoteParticipant | None) -> tuple[float, float] | None:
        """Where the audio track ``sid`` is heard, as gains per output channel (None: both, unchanged):
        its audio route (StartEgress media), else the room composite's ``audio_mixing``. Call once per
        audio track as it starts (``dual_channel_alternate`` counts them)."""
        if self.spec.source == "media":
            route = self._route(sid, participant)
            return _CHANNEL_GAINS[route.channel] if route else None
        if self.spec.audio_mixing == "dual_channel_agent":
            agent = participant is not None and participant.kind == _AGENT
            return _CHANNEL_GAINS["left" if agent else "right"]
        if self.spec.audio_mixing == "dual_channel_alternate":
            self._audio_tracks_seen += 1
            return _CHANNEL_GAINS["left" if self._audio_tracks_seen % 2 else "right"]
        return None

    def _route(self, sid: str, participant: rtc.RemoteParticipant | None) -> AudioRoute | None:
        """The first audio route of a ``media`` egress that matches this track, or None."""
        identity = participant.identity if participant else None
        kind = participant.kind if participant else None
        for route in self.spec.audio_routes:
            if (route.track_id and route.track_id == sid) or (route.identity and route.identity == identity) \
                    or (route.kind is not None and route.kind == kind):
                return route
        return None
