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
