"""StartEgress (the unified request) translated to a room composite request, so one resolver serves both."""

from __future__ import annotations

from livekit.protocol import egress as eg

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
