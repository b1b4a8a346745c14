"""Validation and resolution of Egress API requests into what a worker executes.

Every rule here follows LiveKit's Egress API (seed 001, livekit_egress.proto)
and the wire facts in COMPAT.md; each error is ``invalid_argument`` naming the
field, or ``unimplemented`` for what pyegress does not do yet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from livekit.protocol import egress as eg
from livekit.protocol import models

from ..errors import EgressError, invalid
from ..contract.layouts import Layout
from ..contract.encoding import PRESETS, EncodingSettings, from_preset
from ..contract.streams import redact_url, srt_available
from ..storage import AzureStorage, GCSStorage, S3Storage, AnyStorage
from ..storage.base import proxy_url
from ..storage.s3 import alioss_endpoint
from ..contract.job import FileTarget, ImagesTarget, SegmentsTarget
from .paths import check_fits, confine, expand_placeholders, unique_path
from .web_requests import split_url, validate_page_url

_VIDEO_CODECS = {models.VideoCodec.DEFAULT_VC: "h264_main", models.VideoCodec.H264_BASELINE: "h264_baseline",
                 models.VideoCodec.H264_MAIN: "h264_main", models.VideoCodec.H264_HIGH: "h264_high",
                 models.VideoCodec.VP8: "vp8"}
_AUDIO_CODECS = {models.AudioCodec.DEFAULT_AC: "aac", models.AudioCodec.AAC: "aac", models.AudioCodec.OPUS: "opus",
                 models.AudioCodec.AC_MP3: "mp3"}


def resolve_encoding(req, field_prefix: str = "") -> EncodingSettings:
    """The encoding of a request with the ``options`` oneof (``preset`` | ``advanced``).

    No option at all means H264_720P_30; a ``preset`` present with value 0 is
    that same preset, chosen explicitly (COMPAT.md).

    Raises:
        EgressError: ``invalid_argument`` naming the offending field.
    """
    which = req.WhichOneof("options")
    if which is None:
        return EncodingSettings()
    if which == "preset":
        name = eg.EncodingOptionsPreset.Name(req.preset) if req.preset in eg.EncodingOptionsPreset.values() else ""
        if name not in PRESETS:
            raise invalid(f"{field_prefix}preset", f"{name or req.preset} is not a preset for transcoded egress")
        return from_preset(name)
    adv, base = req.advanced, EncodingSettings()
    f = f"{field_prefix}advanced"
    width, height = adv.width or base.width, adv.height or base.height
    for name, value in (("width", width), ("height", height)):
        if not 16 <= value <= 3840 or value % 2:
            raise invalid(f"{f}.{name}", f"must be an even number of pixels from 16 to 3840, got {value}")
    framerate = adv.framerate or base.framerate
    if not 1 <= framerate <= 60:
        raise invalid(f"{f}.framerate", f"must be 1 to 60 frames per second, got {framerate}")
    if adv.video_codec not in _VIDEO_CODECS:
        raise invalid(f"{f}.video_codec", f"unsupported video codec {adv.video_codec}")
    if adv.audio_codec not in _AUDIO_CODECS:
        raise invalid(f"{f}.audio_codec", f"unsupported audio codec {models.AudioCodec.Name(adv.audio_codec)}")
    frequency = adv.audio_frequency or base.audio_frequency
    if frequency not in (44100, 48000):
        raise invalid(f"{f}.audio_frequency", f"must be 44100 or 48000 Hz, got {frequency}")
    if adv.key_frame_interval < 0:
        raise invalid(f"{f}.key_frame_interval", "must not be negative")
    return EncodingSettings(
        width=width, height=height, depth=adv.depth or base.depth, framerate=framerate,
        video_codec=_VIDEO_CODECS[adv.video_codec], video_bitrate=adv.video_bitrate or base.video_bitrate,
        key_frame_interval=adv.key_frame_interval or base.key_frame_interval,
        audio_codec=_AUDIO_CODECS[adv.audio_codec], audio_bitrate=adv.audio_bitrate or base.audio_bitrate,
        audio_frequency=frequency)


@dataclass
class ResolvedOutputs:
    """Outputs of a request, resolved to local targets; ``legacy`` names the legacy oneof used, if any."""

    files: list[FileTarget] = field(default_factory=list)
    segments: list[SegmentsTarget] = field(default_factory=list)
    images: list[ImagesTarget] = field(default_factory=list)
    streams: list[str] = field(default_factory=list)
    legacy: str | None = None


_UPLOAD_FIELDS = ("s3", "gcp", "azure", "aliOSS")
_FORMAT_EXT = {"mp4": ".mp4", "ogg": ".ogg", "webm": ".webm", "mp3": ".mp3"}
_AUDIO_ONLY_FORMATS = {"ogg": "opus", "mp3": "mp3"}  # container -> the audio codec it takes
_DEFAULT_NAME = "{room_name}-{time}"
_MANIFEST_EXT = ".json"  # the manifest beside a file or playlist
_PREFIX_ROOM = len("_20060102150405000.jpeg")  # the longest a worker appends to a segment or image prefix


def _endpoint(value: str, field_name: str) -> str:
    if value and split_url(value, field_name).scheme not in ("http", "https"):
        raise invalid(field_name, "must be an http:// or https:// URL")
    return value


def _proxy(up, field_name: str) -> str:
    """The proxy URL of an ``S3Upload``/``GCPUpload``'s ``proxy`` (``livekit.ProxyConfig``), "" if unset.

    Raises:
        EgressError: ``invalid_argument`` naming ``<field>.proxy.url``.
    """
    if not up.HasField("proxy"):
        return ""
    try:
        return proxy_url(up.proxy.url, up.proxy.username, up.proxy.password)
    except ValueError as e:
        raise invalid(f"{field_name}.proxy.url", str(e)) from None


def upload_target(msg, field_name: str, default: AnyStorage | None = None) -> AnyStorage | None:
    """The destination named by ``msg``'s upload fields (``s3``, ``gcp``, ``azure``, ``aliOSS``: an output's
    ``output`` oneof, or a ``livekit.StorageConfig``), else ``default`` (the config file's ``storage``).

    Raises:
        EgressError: ``invalid_argument`` naming the missing or bad field (``file_outputs[0].gcp.bucket``).
    """
    which = next((name for name in _UPLOAD_FIELDS if msg.HasField(name)), None)
    if which is None:
        return default
    up, f = getattr(msg, which), f"{field_name}.{which}"
    required = {"s3": ("bucket",), "aliOSS": ("bucket",), "gcp": ("bucket",),
                "azure": ("account_name", "container_name")}[which]
    for name in required:
        if not getattr(up, name):
            raise invalid(f"{f}.{name}", "is required")
    if which == "s3":
        return S3Storage(bucket=up.bucket, region=up.region, endpoint=_endpoint(up.endpoint, f"{f}.endpoint"),
                        access_key=up.access_key, secret=up.secret, session_token=up.session_token,
                        force_path_style=up.force_path_style, metadata=dict(up.metadata), tagging=up.tagging,
                        content_disposition=up.content_disposition, proxy=_proxy(up, f))
    if which == "aliOSS":  # OSS speaks the S3 API (virtual-hosted buckets) at its regional endpoint
        return S3Storage(bucket=up.bucket, region=up.region, access_key=up.access_key, secret=up.secret,
                        endpoint=_endpoint(alioss_endpoint(up.region, up.endpoint), f"{f}.endpoint"))
    if which == "gcp":
        endpoint = ""
        if up.credentials:
            try:
                key = json.loads(up.credentials)
            except ValueError:
                raise invalid(f"{f}.credentials", "must be the JSON of a service account key") from None
            if not isinstance(key, dict):
                raise invalid(f"{f}.credentials", "must be the JSON of a service account key")
            endpoint = _endpoint(str(key.get("gcs_base_url", "")), f"{f}.credentials.gcs_base_url")
        return GCSStorage(bucket=up.bucket, credentials_json=up.credentials, endpoint=endpoint, proxy=_proxy(up, f))
    return AzureStorage(account_name=up.account_name, account_key=up.account_key, container_name=up.container_name)


class _Resolver:
    """Turns the request's path templates into confined, symlink-free absolute paths; a worker gets only
    these (a directory and single-component names in it), so nothing it writes can leave ``root``."""

    def __init__(self, root: Path, values: dict[str, str]) -> None:
        self.root = Path(root).resolve()
        self.values = values

    def path(self, template: str, field_name: str) -> Path:
        if template.endswith("/"):
            template += _DEFAULT_NAME
        return confine(self.root, expand_placeholders(template, self.values), field_name)

    def file(self, template: str, ext: str, field_name: str) -> Path:
        """A new file: ``template`` confined, ``ext`` added if it has no extension, numbered if taken."""
        path = self.path(template, field_name)
        if not path.suffix:
            path = path.with_name(path.name + ext)
        path = unique_path(path)
        check_fits(path, field_name, reserve=len(_MANIFEST_EXT))
        return path

    def prefix(self, template: str, field_name: str) -> Path:
        """The directory and name prefix (one path) of the files a segments or images output numbers."""
        path = self.path(template, field_name)
        check_fits(path, field_name, reserve=_PREFIX_ROOM)
        return path

    def playlist(self, template: str, directory: Path, field_name: str) -> str:
        """The file name of a playlist beside the segments in ``directory``: a bare name is in it; a path
        (from the recordings root, as every path) must lead into it.

        Raises:
            EgressError: ``invalid_argument`` naming ``field_name``.
        """
        name = expand_placeholders(template, self.values)
        name = name if name.endswith(".m3u8") else name + ".m3u8"
        path = confine(self.root if "/" in name else directory, name, field_name)
        if path.parent != directory:
            raise invalid(field_name, f"{template!r} is not in the directory of filename_prefix "
                                      f"({self.relative(directory)!r}): playlists sit beside their segments")
        check_fits(path, field_name, reserve=len(_MANIFEST_EXT))
        return path.name

    def relative(self, path: Path) -> str:
        return str(path.relative_to(self.root))


def _file_format(out, field_name: str, *, video: bool, encoding: EncodingSettings, explicit_audio: bool) -> str:
    """The container of a file output: ``file_type``, else the filepath's extension, else by content."""
    f = f"{field_name}.file_type"
    by_type = {eg.EncodedFileType.MP4: "mp4", eg.EncodedFileType.OGG: "ogg",
               eg.EncodedFileType.MP3: "mp3"}.get(out.file_type)
    by_ext = {v: k for k, v in _FORMAT_EXT.items()}.get(Path(out.filepath).suffix.lower())
    if by_type and by_ext and by_type != by_ext:
        raise invalid(f"{field_name}.filepath", f"extension {Path(out.filepath).suffix} does not match file_type "
                      f"{eg.EncodedFileType.Name(out.file_type)}")
    fmt = by_type or by_ext or ("webm" if video and encoding.video_codec == "vp8" else "mp4" if video else "ogg")
    if fmt in _AUDIO_ONLY_FORMATS and video:
        raise invalid(f, f"{fmt.upper()} holds audio only; set audio_only or use MP4")
    if fmt == "mp4" and video and encoding.video_codec == "vp8":
        raise invalid("advanced.video_codec", "VP8 cannot be written to MP4; use H.264 or a WebM file")
    if fmt == "webm" and video and encoding.video_codec != "vp8":
        raise invalid("advanced.video_codec", "WebM needs VP8 video")
    needed = _AUDIO_ONLY_FORMATS.get(fmt) or ("opus" if fmt == "webm" else None)
    if needed:
        if explicit_audio and encoding.audio_codec != needed:
            raise invalid("advanced.audio_codec", f"{fmt.upper()} needs {needed} audio")
        encoding.audio_codec = needed
    return fmt


def resolve_outputs(req, *, root: Path, values: dict[str, str], audio: bool, video: bool,
                    encoding: EncodingSettings, storage: AnyStorage | None = None) -> ResolvedOutputs:
    """Resolve the outputs of a composite-style request, adjusting ``encoding`` to fit them.

    Lists (``file_outputs``, ``segment_outputs``, ``image_outputs``) take
    precedence; a legacy oneof (``file``, ``segments``) counts only when its
    list is empty, since Node's SDK sends a bare output in both (COMPAT.md).
    One output per kind, as LiveKit. An output without an upload of its
    own goes to ``storage`` (the config file's default; None: local). With segments, the keyframe interval
    becomes the segment duration unless ``advanced.key_frame_interval`` is set.

    Raises:
        EgressError: ``invalid_argument`` (bad or missing output, path escaping
            ``root``, codec/container mismatch) or ``unimplemented``.
    """
    r = _Resolver(root, values)
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
        protocol = {eg.StreamProtocol.SRT: "srt", eg.StreamProtocol.RTMP: "rtmp"}.get(out.protocol)
        result.streams = validate_stream_urls(list(out.urls), f"{f}.urls", protocol=protocol)
        if video and encoding.video_codec == "vp8":
            raise invalid("advanced.video_codec", "RTMP streams need H.264 video")
        if audio and encoding.audio_codec != "aac":
            raise invalid("advanced.audio_codec", "RTMP streams need AAC audio")
    if len(req.image_outputs) and not video:
        raise invalid("image_outputs", "thumbnails need video; audio_only is set")

    for out, f in pick("segment_outputs", "segments"):
        upload = upload_target(out, f, storage)
        if video and encoding.video_codec == "vp8":
            raise invalid("advanced.video_codec", "HLS segments need H.264 video")
        if out.protocol == eg.SegmentedFileProtocol.HLS_FMP4_PROTOCOL:
            raise EgressError("unimplemented", f"{f}.protocol: fragmented-MP4 HLS is not supported yet",
                              argument=f"{f}.protocol")
        duration = out.segment_duration or 4
        if duration > 60:
            raise invalid(f"{f}.segment_duration", f"must be 1 to 60 s, got {duration}")
        prefix_path = r.prefix((out.filename_prefix or _DEFAULT_NAME).removesuffix(".m3u8"), f"{f}.filename_prefix")
        directory = prefix_path.parent
        # a playlist named with the segments' own directory ("dir/index.m3u8", as autoegress examples do)
        # is that name inside it
        playlist = r.playlist(out.playlist_name or prefix_path.name, directory, f"{f}.playlist_name")
        live = out.live_playlist_name and r.playlist(out.live_playlist_name, directory, f"{f}.live_playlist_name")
        result.segments.append(SegmentsTarget(
            directory=str(directory), prefix=prefix_path.name, playlist=playlist, live_playlist=live,
            segment_duration=float(duration),
            suffix="timestamp" if out.filename_suffix == eg.SegmentedFileSuffix.TIMESTAMP else "index",
            reported_prefix=f"{r.relative(directory)}/".removeprefix("./"), upload=upload))
        if not explicit_gop:
            encoding.key_frame_interval = float(duration)

    for out, f in pick("file_outputs", "file"):
        upload = upload_target(out, f, storage)
        fmt = _file_format(out, f, video=video, encoding=encoding, explicit_audio=explicit_audio)
        path = r.file(out.filepath or _DEFAULT_NAME, _FORMAT_EXT[fmt], f"{f}.filepath")
        result.files.append(FileTarget(path=str(path), filename=r.relative(path), format=fmt, upload=upload))

    for out, f in pick("image_outputs", "images"):
        upload = upload_target(out, f, storage)
        if out.image_codec not in (0, 1):
            raise invalid(f"{f}.image_codec", "only JPEG is supported")
        for name in ("width", "height"):
            value = getattr(out, name)
            if value and (value % 2 or not 16 <= value <= 3840):
                raise invalid(f"{f}.{name}", f"must be an even number of pixels from 16 to 3840, got {value}")
        prefix_path = r.prefix(out.filename_prefix or _DEFAULT_NAME, f"{f}.filename_prefix")
        suffix = {eg.ImageFileSuffix.IMAGE_SUFFIX_TIMESTAMP: "timestamp",
                  eg.ImageFileSuffix.IMAGE_SUFFIX_NONE_OVERWRITE: "none"}.get(out.filename_suffix, "index")
        result.images.append(ImagesTarget(
            directory=str(prefix_path.parent), prefix=prefix_path.name, interval_s=float(out.capture_interval or 10),
            width=out.width, height=out.height, suffix=suffix,
            reported_prefix=f"{r.relative(prefix_path.parent)}/".removeprefix("./"), upload=upload))

    if not (result.files or result.segments or result.images or result.streams):
        raise invalid("file_outputs", "the request has no output; "
                      "set file_outputs, segment_outputs, stream_outputs or image_outputs")
    if result.segments and encoding.audio_codec != "aac" and audio:
        raise invalid("advanced.audio_codec", "HLS segments need AAC audio")
    return result


_TRACK_SOURCES = {0: "unknown", 1: "camera", 2: "microphone", 3: "screen_share", 4: "screen_share_audio"}


def track_values(track, identity: str) -> dict[str, str]:
    """Filename placeholder values of a track (``livekit.TrackInfo``) published by ``identity``."""
    return {"track_id": track.sid, "publisher_identity": identity,
            "track_type": "audio" if track.type == models.TrackType.AUDIO else "video",
            "track_source": _TRACK_SOURCES.get(track.source, "unknown")}


def resolve_track_egress(req: eg.TrackEgressRequest, track, *, root: Path, values: dict[str, str],
                         storage: AnyStorage | None = None) -> tuple[EncodingSettings, list[FileTarget], str]:
    """Encoding, file targets and websocket URL of a track egress for ``track`` (``livekit.TrackInfo``).

    The SDK gives decoded media only, so tracks are re-encoded, keeping the
    codec family and resolution: audio → OGG/Opus, VP8 → WebM/VP8, anything
    else → MP4/H.264 at the track's size (bitrate scaled from 3000 kbps at 720p).

    Raises:
        EgressError: ``invalid_argument`` for a missing or bad output.
    """
    is_audio = track.type == models.TrackType.AUDIO
    which = req.WhichOneof("output")
    if which is None:
        raise invalid("file", "set file or websocket_url")
    encoding = EncodingSettings(audio_codec="opus")
    if which == "websocket_url":
        parts = split_url(req.websocket_url, "websocket_url")
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise invalid("websocket_url", f"must be a ws:// or wss:// URL, got scheme {parts.scheme!r}")
        if not is_audio:
            raise invalid("websocket_url", "only audio tracks can be sent to a websocket")
        return encoding, [], req.websocket_url
    upload = upload_target(req.file, "file", storage)
    if is_audio:
        fmt = "ogg"
    elif "vp8" in track.mime_type.lower():
        fmt, encoding.video_codec = "webm", "vp8"
    else:
        fmt, encoding.audio_codec = "mp4", "aac"
    if not is_audio:
        encoding.width = max(16, (track.width or 1280) & ~1)
        encoding.height = max(16, (track.height or 720) & ~1)
        encoding.video_bitrate = max(300, round(3000 * encoding.width * encoding.height / (1280 * 720)))
    r = _Resolver(root, values)
    path = r.file(req.file.filepath or "{track_id}-{time}", _FORMAT_EXT[fmt], "file.filepath")
    return encoding, [FileTarget(path=str(path), filename=r.relative(path), format=fmt, upload=upload)], ""


def validate_stream_urls(urls: list[str], field_name: str, *, protocol: str | None = None) -> list[str]:
    """Check stream URLs: ``rtmp://`` or ``rtmps://`` with a host, or ``srt://host:port`` (caller mode,
    query options such as ``streamid`` and ``passphrase`` passed on to libsrt). ``protocol`` (``"rtmp"``
    or ``"srt"``, from StreamOutput.protocol) requires every URL to be of that kind.

    Raises:
        EgressError: ``invalid_argument`` naming ``field_name[i]``, or ``unimplemented`` for SRT
            when no ``ffmpeg`` with libsrt is installed.
    """
    if not urls:
        raise invalid(field_name, "needs at least one URL")
    for i, url in enumerate(urls):
        parts = split_url(url, f"{field_name}[{i}]")
        kind = "srt" if parts.scheme == "srt" else "rtmp"
        if protocol and kind != protocol:
            raise invalid(f"{field_name}[{i}]", f"must be an {protocol}:// URL for protocol {protocol.upper()}, "
                                                f"got scheme {parts.scheme!r}")
        if kind == "srt":
            if not parts.hostname or not parts.port:
                raise invalid(f"{field_name}[{i}]", "must be srt://host:port")
            if not srt_available():
                raise EgressError("unimplemented", f"{field_name}[{i}]: SRT needs an ffmpeg with libsrt on PATH",
                                  argument=f"{field_name}[{i}]")
        elif parts.scheme not in ("rtmp", "rtmps") or not parts.hostname:
            raise invalid(f"{field_name}[{i}]",
                          f"must be an rtmp://, rtmps:// or srt:// URL, got scheme {parts.scheme!r}")
    return urls


def request_outputs(request) -> dict[str, list]:
    """The outputs a stored request asked for, by kind (``file``, ``segments``, ``stream``), in the order
    their results are reported: lists first, a legacy oneof only when its list is empty; StartEgress's
    ``outputs`` by their ``config``."""
    found: dict[str, list] = {"file": [], "segments": [], "stream": []}
    for out in getattr(request, "outputs", []):  # StartEgressRequest
        kind = out.WhichOneof("config")
        if kind in found:
            found[kind].append(getattr(out, kind))
    for kind, field_name in (("file", "file_outputs"), ("segments", "segment_outputs"), ("stream", "stream_outputs")):
        found[kind] += list(getattr(request, field_name, []))
    if "output" in {o.name for o in request.DESCRIPTOR.oneofs}:
        legacy = request.WhichOneof("output")
        if legacy in found and not found[legacy]:
            found[legacy] = [getattr(request, legacy)]
    return found


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


def redacted_request(req):
    """A copy of a request with stream keys masked and storage credentials removed, for EgressInfo
    (secrets are never echoed)."""
    copy = type(req)()
    copy.CopyFrom(req)
    _strip_credentials(copy)
    streams = list(getattr(copy, "stream_outputs", []))
    streams += [o.stream for o in getattr(copy, "outputs", []) if o.WhichOneof("config") == "stream"]
    if "output" in {o.name for o in copy.DESCRIPTOR.oneofs} and copy.WhichOneof("output") == "stream":
        streams.append(copy.stream)  # Node sends it beside stream_outputs: mask both
    for out in streams:
        masked = [redact_url(u) for u in out.urls]
        del out.urls[:]
        out.urls.extend(masked)
    return copy


# S3/AliOSS secret, access_key, session_token; GCP credentials; Azure account_key; ProxyConfig password
_SECRET_FIELDS = {"secret", "session_token", "credentials", "account_key", "access_key", "password"}


def _strip_credentials(message) -> None:
    """Clear every credential field (S3 secret, GCP credentials, Azure key, proxy password, ...) anywhere in
    ``message``."""
    for fd, value in message.ListFields():
        if fd.name in _SECRET_FIELDS and fd.type == fd.TYPE_STRING:
            message.ClearField(fd.name)
        elif fd.type == fd.TYPE_MESSAGE:
            if fd.is_repeated:
                if not fd.message_type.GetOptions().map_entry:
                    for item in value:
                        _strip_credentials(item)
            else:
                _strip_credentials(value)


def validate_room_composite(req: eg.RoomCompositeEgressRequest) -> Layout:
    """Check the request's own fields; returns the parsed layout.

    Raises:
        EgressError: ``invalid_argument`` naming the field.
    """
    if not req.room_name:
        raise invalid("room_name", "is required")
    if req.audio_only and req.video_only:
        raise invalid("audio_only", "audio_only and video_only cannot both be set")
    if req.custom_base_url:
        validate_page_url(req.custom_base_url, "custom_base_url")
    try:
        return Layout.parse(req.layout)
    except ValueError as e:
        raise invalid("layout", str(e)) from None
