"""A composite-style request's outputs, resolved kind by kind (one module per kind, as ``media/outputs/``);
:func:`request_outputs` (what a stored request asked for) is the contract's, shared with the handler."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ...contract.egress_info import request_outputs
from ...contract.encoding import EncodingSettings
from ...contract.job import FileTarget, ImagesTarget, SegmentsTarget
from ...errors import invalid
from ...storage import AnyStorage
from .files import resolve_file
from .images import resolve_images
from .paths import Resolver
from .segments import resolve_segments
from .streams import resolve_stream


@dataclass
class ResolvedOutputs:
    """Outputs of a request, resolved to local targets; ``legacy`` names the legacy oneof used, if any."""

    files: list[FileTarget] = field(default_factory=list)
    segments: list[SegmentsTarget] = field(default_factory=list)
    images: list[ImagesTarget] = field(default_factory=list)
    streams: list[str] = field(default_factory=list)
    legacy: str | None = None


def resolve_outputs(req, *, root: Path, values: dict[str, str], audio: bool, video: bool,
                    encoding: EncodingSettings, storage: AnyStorage | None = None) -> ResolvedOutputs:
    """Resolve the outputs of a composite-style request, adjusting ``encoding`` to fit them.

    Lists (``file_outputs``, ``segment_outputs``, ``image_outputs``) take
    precedence; a legacy oneof (``file``, ``segments``) counts only when its
    list is empty, since Node's SDK sends a bare output in both (``docs/wire.md``).
    One output per kind, as LiveKit. An output without an upload of its
    own goes to ``storage`` (the config file's default; None: local). With segments, the keyframe interval
    becomes the segment duration unless ``advanced.key_frame_interval`` is set.

    Raises:
        EgressError: ``invalid_argument`` (bad or missing output, path escaping
            ``root``, codec/container mismatch) or ``unimplemented``.
    """
    r = Resolver(root, values)
    legacy = req.WhichOneof("output") if "output" in {o.name for o in req.DESCRIPTOR.oneofs} else None
    result = ResolvedOutputs()
    explicit_audio = req.WhichOneof("options") == "advanced" and req.advanced.audio_codec != 0
    explicit_gop = req.WhichOneof("options") == "advanced" and req.advanced.key_frame_interval > 0

    def pick(kind: str, legacy_name: str) -> list[tuple[object, str]]:
        items = list(getattr(req, kind))
        if len(items) > 1:
            raise invalid(kind, f"only one entry is supported per egress (as LiveKit), got {len(items)}")
        if items:
            return [(items[0], f"{kind}[0]")]
        if legacy == legacy_name:
            result.legacy = legacy_name
            return [(getattr(req, legacy_name), legacy_name)]
        return []

    for out, f in pick("stream_outputs", "stream"):
        result.streams = resolve_stream(out, f, audio=audio, video=video, encoding=encoding)
    if len(req.image_outputs) and not video:
        raise invalid("image_outputs", "thumbnails need video; audio_only is set")
    for out, f in pick("segment_outputs", "segments"):
        result.segments.append(resolve_segments(out, f, r, storage=storage, video=video, encoding=encoding))
        if not explicit_gop:
            encoding.key_frame_interval = result.segments[-1].segment_duration
    for out, f in pick("file_outputs", "file"):
        result.files.append(resolve_file(out, f, r, storage=storage, video=video, encoding=encoding,
                                         explicit_audio=explicit_audio))
    for out, f in pick("image_outputs", "images"):
        result.images.append(resolve_images(out, f, r, storage=storage))

    if not (result.files or result.segments or result.images or result.streams):
        raise invalid("file_outputs", "the request has no output; "
                      "set file_outputs, segment_outputs, stream_outputs or image_outputs")
    if result.segments and encoding.audio_codec != "aac" and audio:
        raise invalid("advanced.audio_codec", "HLS segments need AAC audio")
    return result


__all__ = ["ResolvedOutputs", "request_outputs", "resolve_outputs"]
