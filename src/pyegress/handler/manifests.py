"""LiveKit's manifest: ``<file>.json`` beside each file and ``<playlist>.json`` beside each playlist, the
egress's final EgressInfo as JSON (livekit/egress writes the same beside its outputs).

The handler writes them once its pipeline has returned, into the EgressInfo the service created
(``JobSpec.info``) folded with its own events, and uploads those of uploaded outputs beside them, as it
uploads every other file (:func:`finish`); the location travels to the service in its final event. The
service writes them, locally only, for an egress whose handler died without an end."""

from __future__ import annotations

import base64
import logging
import time
from pathlib import Path

from google.protobuf import json_format
from livekit.protocol import egress as eg

from ..contract.egress_info import apply_worker_event, request_outputs
from ..contract.events import HandlerEvent
from ..contract.job import FileTarget, JobSpec, SegmentsTarget
from ..storage import AnyStorage
from ..storage.local import replace_atomically
from .disk_results import event_files_from_disk

log = logging.getLogger(__name__)


def write_manifests(info: eg.EgressInfo, files: list[FileTarget], segments: list[SegmentsTarget],
                    upload_retry_base_s: float = 1.0, upload: bool = True) -> None:
    """Write the manifest of each file and playlist output of ``info`` unless its request output has
    ``disable_manifest``; the first becomes ``info.manifest_location``. ``files`` / ``segments`` are
    the egress's targets in the order of its request's outputs. With ``upload``, the manifest of an
    uploaded output is uploaded beside it (and kept locally if that fails). Blocks: call it in a thread.

    Raises:
        OSError: a manifest cannot be written (no space, no inode, ...).
    """
    outputs = request_outputs(getattr(info, info.WhichOneof("request")))
    body = json_format.MessageToJson(info, preserving_proto_field_name=True)
    targets: list[tuple[Path, str, AnyStorage | None, object]] = [
        (Path(t.path), t.filename, t.upload, o) for t, o in zip(files, outputs["file"])]
    targets += [(Path(t.directory) / t.playlist, t.reported_prefix + t.playlist, t.upload, o)
                for t, o in zip(segments, outputs["segments"])]
    for path, key, storage, out in targets:
        if out.disable_manifest or not path.parent.is_dir():
            continue
        manifest = path.with_name(path.name + ".json")
        replace_atomically(manifest, body.encode())  # a link planted there is replaced, never followed
        location = str(manifest)
        if upload and storage is not None:
            try:  # one retry only: the recording's own uploads have already waited out any outage
                location = storage.upload(manifest, key + ".json", attempts=2, base_delay_s=upload_retry_base_s)
                manifest.unlink()
            except Exception as e:  # a manifest is not worth failing the egress: it stays local
                log.warning("upload of manifest %s failed, kept at %s: %s", key + ".json", manifest, e)
        info.manifest_location = info.manifest_location or location


def finish(spec: JobSpec, events: list[HandlerEvent], final: HandlerEvent, layout: str = "") -> None:
    """The handler's last step before it reports ``final`` (``complete`` or ``failed``): read a failed
    egress's files back from the disk into ``final``, fold its events into the EgressInfo it was given
    (with the room composite's ``layout`` if UpdateLayout changed it), write (and upload) the manifests
    and put their location in ``final.manifest_location``. A manifest that cannot be written is logged and left out; the
    egress's end stands. Blocks: call it in a thread."""
    if final.event == "failed":  # the handler counted media its files may not hold
        event_files_from_disk(final.files)
    if not spec.info:
        return
    info = eg.EgressInfo.FromString(base64.b64decode(spec.info))
    files = [target.model_copy() for target in spec.files]
    for event in [*events, final]:
        apply_worker_event(info, event, spec.legacy)
        if event.event == "active":  # the names the files really got (``name-1.mp4``), before any upload
            for target, result in zip(files, event.files):
                target.path, target.filename = result.path, result.filename
    if layout and info.WhichOneof("request") == "room_composite":
        info.room_composite.layout = layout
    try:
        info.updated_at = time.time_ns()
        write_manifests(info, files, spec.segments, spec.upload_retry_base_s)
    except OSError as e:
        log.error("egress %s: cannot write its manifest: %s", info.egress_id, e)
    final.manifest_location = info.manifest_location
