"""livekit-server's rooms as the service sees them: a room's SID and participants (its RoomService), the
checks a request's participant or tracks are there, and the token the recorder joins a room with."""

from __future__ import annotations

from livekit import api
from livekit.protocol import models

from ..config import Settings
from ..errors import EgressError, invalid


class Rooms:
    """Looks rooms up on the livekit-server of ``settings`` (``http_url``, API key and secret)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _api(self) -> api.LiveKitAPI:
        return api.LiveKitAPI(self.settings.http_url, self.settings.api_key, self.settings.api_secret)

    async def room_sid(self, room_name: str) -> str:
        """The room's SID.

        Raises:
            EgressError: ``not_found`` if the room does not exist, ``unavailable``
                if livekit-server cannot be reached.
        """
        try:
            async with self._api() as lk:
                rooms = await lk.room.list_rooms(api.ListRoomsRequest(names=[room_name]))
        except Exception as e:  # network or server errors of every kind
            raise EgressError("unavailable", f"cannot reach livekit-server at {self.settings.http_url}: {e}") from None
        if not rooms.rooms:
            raise EgressError("not_found", f"room {room_name!r} does not exist", room_name=room_name)
        return rooms.rooms[0].sid

    async def participants(self, room_name: str) -> tuple[str, list]:
        """The room's SID and participants (``livekit.ParticipantInfo``); checks the room exists.

        Raises:
            EgressError: ``not_found`` if the room does not exist, ``unavailable`` if livekit-server
                cannot be reached.
        """
        room_id = await self.room_sid(room_name)
        try:
            async with self._api() as lk:
                listed = await lk.room.list_participants(api.ListParticipantsRequest(room=room_name))
                return room_id, list(listed.participants)
        except Exception as e:  # network or server errors of every kind
            raise EgressError("unavailable", f"cannot reach livekit-server: {e}") from None


def recorder_token(settings: Settings, egress_id: str, room_name: str) -> str:
    """A token for the handler: hidden recorder, subscribe only, identity = ``egress_id``."""
    grants = api.VideoGrants(room_join=True, room=room_name, can_subscribe=True, can_publish=False,
                             can_publish_data=False, hidden=True, recorder=True)
    return (api.AccessToken(settings.api_key, settings.api_secret)
            .with_identity(egress_id).with_name("pyegress").with_kind("egress")
            .with_grants(grants).to_jwt())


def require_participant(participants: list, identity: str, room_name: str) -> None:
    """Check that ``identity`` is among ``participants`` (``livekit.ParticipantInfo``) of ``room_name``.

    Raises:
        EgressError: ``not_found`` naming ``identity``.
    """
    if not any(p.identity == identity for p in participants):
        raise EgressError("not_found", f"identity: participant {identity!r} is not in room {room_name!r}",
                          argument="identity")


def require_tracks(participants: list, room_name: str, audio_track_id: str, video_track_id: str) -> None:
    """Check that each track SID given is published in the room and of its kind.

    Raises:
        EgressError: ``not_found`` for an unknown track SID, ``invalid_argument`` for a track of the wrong kind.
    """
    tracks = {t.sid: t for p in participants for t in p.tracks}
    for field_name, sid, kind in (("audio_track_id", audio_track_id, models.TrackType.AUDIO),
                                  ("video_track_id", video_track_id, models.TrackType.VIDEO)):
        if not sid:
            continue
        if sid not in tracks:
            raise EgressError("not_found", f"{field_name}: track {sid!r} is not published in room "
                              f"{room_name!r}", argument=field_name)
        if tracks[sid].type != kind:
            raise invalid(field_name, f"track {sid} is a {models.TrackType.Name(tracks[sid].type).lower()} track")


def find_track(participants: list, track_id: str, room_name: str) -> tuple[str, object]:
    """The identity of the participant publishing ``track_id`` and its ``livekit.TrackInfo``.

    Raises:
        EgressError: ``not_found`` naming ``track_id``.
    """
    found = [(p.identity, t) for p in participants for t in p.tracks if t.sid == track_id]
    if not found:
        raise EgressError("not_found", f"track_id: track {track_id!r} is not published in room "
                          f"{room_name!r}", argument="track_id")
    return found[0]
