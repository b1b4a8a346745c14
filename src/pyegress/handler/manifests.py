"""LiveKit's manifest: ``<file>.json`` beside each file and ``<playlist>.json`` beside each playlist, the
egress's final EgressInfo as JSON (livekit/egress writes the same beside its outputs)."""

from __future__ import annotations

import logging
from pathlib import Path

from google.protobuf import json_format
from livekit.protocol import egress as eg

from ..storage import AnyStorage
from ..storage.local import replace_atomically
from ..contract.job import FileTarget, SegmentsTarget
from .requests import request_outputs

log = logging.getLogger(__name__)


def write_manifests(info: eg.EgressInfo, files: list[FileTarget], segments: list[SegmentsTarget],
                    upload_retry_base_s: float = 1.0) -> None:
    """Write the manifest of each file and playlist output of ``info`` unless its request output has
    ``disable_manifest``; the first becomes ``info.manifest_location``. ``files`` / ``segments`` are
    the egress's targets in the order of its request's outputs. The manifest of an uploaded output is
    uploaded beside it (and kept locally if that fails). Blocks: call it in a thread.

    Raises:
        OSError: a manifest cannot be written (no space, no inode, ...).
    """
    outputs = request_outputs(getattr(info, info.WhichOneof("request")))
    body = json_format.MessageToJson(info, preserving_proto_field_name=True)
    targets: list[tuple[Path, str, AnyStorage | None, object]] = [
        (Path(t.path), t.filename, t.upload, o) for t, o in zip(files, outputs["file"])]
    targets += [(Path(t.directory) / t.playlist, t.reported_prefix + t.playlist, t.upload, o)
                for t, o in zip(segments, outputs["segments"])]
    for path, key, upload, out in targets:
        if out.disable_manifest or not path.parent.is_dir():
            continue
        manifest = path.with_name(path.name + ".json")
        replace_atomically(manifest, body.encode())  # a link planted there is replaced, never followed
        location = str(manifest)
        if upload is not None:
            try:  # one retry only: the recording's own uploads have already waited out any outage
                location = upload.upload(manifest, key + ".json", attempts=2, base_delay_s=upload_retry_base_s)
                manifest.unlink()
            except Exception as e:  # a manifest is not worth failing the egress: it stays local
                log.warning("upload of manifest %s failed, kept at %s: %s", key + ".json", manifest, e)
        info.manifest_location = info.manifest_location or location
