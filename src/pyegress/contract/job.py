"""The messages between the service and an egress worker process.

The service writes one :class:`JobSpec` JSON line to the worker's stdin, then
:class:`Command` lines; the worker writes :class:`HandlerEvent` JSON lines to
stdout and logs to stderr. Everything the worker needs is resolved by the
service first (paths, encoding, token), so the worker never sees a request.
Times are ns since the Unix epoch, durations ns, sizes bytes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from ..config import RedisConfig
from ..storage import AnyStorage
from .encoding import EncodingSettings


class FileTarget(BaseModel):
    """One file: ``path`` absolute, ``filename`` as reported, ``format`` the container; with ``upload``
    it is stored as object ``filename`` (streamed while recording where the destination can), and the
    local copy removed once the object is confirmed."""

    path: str
    filename: str
    format: Literal["mp4", "ogg", "webm", "mp3"] = "mp4"
    upload: AnyStorage | None = None


class SegmentsTarget(BaseModel):
    """HLS output (RFC 8216): segments ``<prefix>_00000.ts`` (or a UTC timestamp suffix) in ``directory``;
    with ``container`` ``fmp4`` (LiveKit's ``HLS_FMP4_PROTOCOL``) fragmented MP4, ``<prefix>_00000.m4s``
    after the initialization segment ``<prefix>_init.mp4`` (``docs/hls.md``).

    ``playlist`` / ``live_playlist`` are file names in ``directory`` (``""``: none);
    ``segment_duration`` in s. With ``upload``, each segment is stored as object
    ``reported_prefix + name`` as soon as it is closed, and the playlists after it.
    """

    directory: str
    prefix: str
    playlist: str
    live_playlist: str = ""
    segment_duration: float = 4.0
    container: Literal["ts", "fmp4"] = "ts"
    suffix: Literal["index", "timestamp"] = "index"
    reported_prefix: str = ""
    upload: AnyStorage | None = None


class ImagesTarget(BaseModel):
    """JPEG thumbnails every ``interval_s`` at ``width`` x ``height`` as ``<prefix>_<suffix>.jpeg``; with
    ``upload`` each is stored as object ``reported_prefix + name`` as soon as it is written."""

    directory: str
    prefix: str
    interval_s: float = 10.0
    width: int = 0
    height: int = 0
    suffix: Literal["index", "timestamp", "none"] = "index"
    reported_prefix: str = ""
    upload: AnyStorage | None = None


class AudioRoute(BaseModel):
    """Which audio a ``media`` egress takes (livekit.AudioRoute): by track SID, participant identity or
    participant kind, into ``channel`` ``both``, ``left`` or ``right``."""

    track_id: str = ""
    identity: str = ""
    kind: int | None = None
    channel: Literal["both", "left", "right"] = "both"


class IOReport(BaseModel):
    """For an egress livekit-server handed out over psrpc: how the handler reports its end by itself
    if the service that launched it dies (IOInfo.UpdateEgress over ``redis``), from ``JobSpec.info``."""

    redis: RedisConfig


class JobSpec(BaseModel):
    """An egress job, fully resolved.

    ``source`` selects tracks: ``room_composite`` (every participant),
    ``participant`` (``identity``'s camera+microphone, or screen share + its
    audio with ``screen_share``), ``track_composite`` (``audio_track_id`` +
    ``video_track_id``), ``track`` (``track_id`` alone, to a file or, audio
    only, as raw PCM to ``websocket_url``), ``media`` (StartEgress's media
    source: video by ``video_track_id`` or ``identity``, audio by
    ``audio_routes`` or every audio track with ``capture_all_audio``), ``web`` (``web_url``
    rendered in Chromium; with ``await_start_signal`` recording starts when the page logs
    ``START_RECORDING``). ``empty_timeout_s``: seconds after the last
    participant left (having seen one) before the egress ends by itself.
    ``audio_mixing`` (room composite, LiveKit's ``AudioMixing``): ``default`` mixes every track into both
    channels; ``dual_channel_agent`` puts agents on the left and everyone else on the right;
    ``dual_channel_alternate`` puts each new audio track on the other side from the one before it.
    """

    egress_id: str
    ws_url: str
    token: str
    room_name: str
    source: Literal["room_composite", "participant", "track_composite", "track", "media", "web"] = "room_composite"
    identity: str = ""
    screen_share: bool = False
    audio_track_id: str = ""
    video_track_id: str = ""
    track_id: str = ""
    websocket_url: str = ""
    audio_routes: list[AudioRoute] = []
    capture_all_audio: bool = False
    web_url: str = ""
    await_start_signal: bool = False
    layout: str = "grid"
    audio_mixing: Literal["default", "dual_channel_agent", "dual_channel_alternate"] = "default"
    audio: bool = True
    video: bool = True
    encoding: EncodingSettings = EncodingSettings()
    files: list[FileTarget] = []
    segments: list[SegmentsTarget] = []
    images: list[ImagesTarget] = []
    streams: list[str] = []
    empty_timeout_s: float = 10.0
    progress_interval_s: float = 5.0
    max_duration_s: float = 0.0  # 0: no limit
    max_size_bytes: int = 0  # what the outputs may hold (session_limits.file_output_max_size); 0: no limit
    upload_attempts: int = 6
    upload_retry_base_s: float = 1.0
    upload_retry_max_s: float = 0.0  # 0: waits keep doubling
    io_report: IOReport | None = None
    info: str = ""  # the base64 protobuf EgressInfo as the service created it (manifests, own report)
    legacy: str = ""  # the legacy result oneof (file, segments, stream) its request used
    backup: AnyStorage | None = None  # where uploads that failed for good go (None: kept locally)
    stream_uploads: bool = True  # MP4 files go up while they are recorded (else all at the end)
    passthrough: bool = False  # one track's samples written unchanged (media/passthrough.py), not re-encoded
    receiver: Literal["sdk", "packets"] = "packets"  # how a room egress that decodes receives (Settings.composite_receiver)
    preview_path: str = ""  # absolute path of the live preview JPEG, written on ``preview`` commands ("": none)


class Command(BaseModel):
    """Service → worker: ``stop`` ends the egress, ``layout`` switches the composite layout,
    ``update_stream`` adds and removes stream URLs, ``pause`` stops recording into the open outputs
    and ``resume`` continues them without a gap in their timeline, ``preview`` has the worker write a
    JPEG of its picture to ``JobSpec.preview_path`` about once a second for the next 10 s
    (:mod:`pyegress.media.outputs.preview`)."""

    cmd: Literal["stop", "layout", "update_stream", "pause", "resume", "preview"]
    layout: str = ""
    add_urls: list[str] = []
    remove_urls: list[str] = []
