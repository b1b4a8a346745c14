"""StartEgress (the unified request) translated to a room composite request, so one resolver serves both,
and its ``media`` source to the JobSpec fields that select tracks."""

from __future__ import annotations

from livekit.protocol import egress as eg

from ...contract.job import AudioRoute
from ...errors import invalid
from .storage import upload_target


def unified_to_composite(req: eg.StartEgressRequest) -> eg.RoomCompositeEgressRequest:
    """StartEgress's encoding and outputs as a room composite request, so one resolver serves both.

    ``outputs[i].file`` (livekit.FileOutput) becomes an EncodedFileOutput with
    the same fields; segments, stream and images carry over unchanged. An
    output's ``storage``, else the request's ``storage``, becomes its upload
    oneof (``livekit.StorageConfig`` has the same ``s3``/``gcp``/``azure``/``aliOSS``).

    Raises:
        EgressError: ``invalid_argument`` naming a bad ``storage`` field.
    """
    upload_target(req.storage, "storage")
    for i, out in enumerate(req.outputs):
        upload_target(out.storage, f"outputs[{i}].storage")
    shim = eg.RoomCompositeEgressRequest(room_name=req.room_name)
    if req.WhichOneof("encoding") == "preset":
        shim.preset = req.preset
    elif req.WhichOneof("encoding") == "advanced":
        shim.advanced.CopyFrom(req.advanced)
    for out in req.outputs:
        kind = out.WhichOneof("config")
        if kind == "file":
            added = shim.file_outputs.add(file_type=out.file.file_type, filepath=out.file.filepath,
                                          disable_manifest=out.file.disable_manifest)
        elif kind == "segments":
            (added := shim.segment_outputs.add()).CopyFrom(out.segments)
        elif kind == "stream":
            shim.stream_outputs.add().CopyFrom(out.stream)
            continue
        elif kind == "images":
            (added := shim.image_outputs.add()).CopyFrom(out.images)
        else:
            continue
        storage = out.storage if out.storage.WhichOneof("provider") else req.storage
        provider = storage.WhichOneof("provider")
        if provider and added.WhichOneof("output") is None:
            getattr(added, provider).CopyFrom(getattr(storage, provider))
    return shim


def media_selection(media: eg.MediaSource) -> tuple[bool, bool, dict]:
    """``(audio, video, selection)`` of StartEgress's ``media`` source: whether audio and video are
    recorded, and the JobSpec fields choosing them (video track or participant, routed audio).

    Raises:
        EgressError: ``invalid_argument`` naming ``media`` when it selects nothing.
    """
    video = media.WhichOneof("video") is not None
    routes = [AudioRoute(track_id=r.track_id, identity=r.participant_identity,
                         kind=r.participant_kind if r.WhichOneof("match") == "participant_kind" else None,
                         channel={1: "left", 2: "right"}.get(r.channel, "both")) for r in media.audio.routes]
    audio = media.audio.capture_all or bool(routes)
    if not (video or audio):
        raise invalid("media", "select a video (video_track_id or participant_video) or audio")
    return audio, video, dict(video_track_id=media.video_track_id, identity=media.participant_video.identity,
                              screen_share=media.participant_video.prefer_screen_share, audio_routes=routes,
                              capture_all_audio=media.audio.capture_all)


def passthrough_track(req: eg.StartEgressRequest) -> str:
    """The one track a ``PASSTHROUGH`` StartEgress writes unchanged, after LiveKit's rules for what a
    remux can express (livekit/egress ``validatePassthrough``): a ``media`` source naming exactly one
    track, by ``video_track_id`` or by a single audio route matching a ``track_id``, and exactly one file
    output with ``DEFAULT_FILETYPE`` (the track's codec chooses the container).

    Raises:
        EgressError: ``invalid_argument`` naming the field that breaks a rule.
    """
    if req.WhichOneof("source") != "media":
        raise invalid("preset", "PASSTHROUGH needs a media source (one track written unchanged)")
    media = req.media
    which_video = media.WhichOneof("video")
    if which_video == "participant_video":
        raise invalid("media.participant_video", "PASSTHROUGH takes a track by video_track_id")
    if which_video == "video_track_id" and not media.video_track_id:
        raise invalid("media.video_track_id", "is empty")
    audio_track = ""
    if media.audio.capture_all:
        raise invalid("media.audio.capture_all", "PASSTHROUGH writes one track, not every audio track")
    if len(media.audio.routes) > 1:
        raise invalid("media.audio.routes", "PASSTHROUGH takes at most one audio route")
    if media.audio.routes:
        route = media.audio.routes[0]
        if route.WhichOneof("match") != "track_id":
            raise invalid("media.audio.routes[0]", "PASSTHROUGH matches its audio route by track_id")
        if not route.track_id:
            raise invalid("media.audio.routes[0].track_id", "is empty")
        audio_track = route.track_id
    if bool(media.video_track_id) == bool(audio_track):
        raise invalid("media", "PASSTHROUGH writes exactly one track: a video_track_id or one audio route")
    if len(req.outputs) != 1:
        raise invalid("outputs", "PASSTHROUGH writes exactly one output")
    out = req.outputs[0]
    if out.WhichOneof("config") != "file":
        raise invalid("outputs[0]", "PASSTHROUGH writes a file output")
    if out.file.file_type != eg.EncodedFileType.DEFAULT_FILETYPE:
        raise invalid("outputs[0].file.file_type", "PASSTHROUGH takes the container from the track's codec; "
                      "leave file_type unset")
    return media.video_track_id or audio_track
