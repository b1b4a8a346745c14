"""Handler → service events: results, end reasons and the events themselves (JSON lines on the
handler's stdout). Times are ns since the Unix epoch, durations ns, sizes bytes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

#: Why an egress ended, as LiveKit words it (livekit/protocol ``livekit/livekit_egress.go``, ``EndReason*``);
#: EgressInfo.details is ``"End reason: <reason>"``.
END_API = "StopEgress API"
END_KILLED = "Process killed"
END_SOURCE_CLOSED = "Source closed"
END_LIMIT_REACHED = "Session limit reached"
END_STREAMS_STOPPED = "All streams stopped"
END_FAILURE = "Failure"
#: EgressInfo.error of an egress stopped before it recorded anything (LiveKit's ``MsgStoppedBeforeStarted``).
MSG_STOPPED_BEFORE_STARTED = "Stop called before pipeline could start"
#: EgressInfo.error when the room connection was lost for good (livekit/egress ``ErrRoomConnectionFailed``).
MSG_ROOM_CONNECTION_FAILED = "recording ended early: connection to room failed"


class FileResult(BaseModel):
    """A file as ``livekit.FileInfo`` reports it (``path`` becomes ``location``)."""

    filename: str
    path: str
    size: int
    duration: int
    started_at: int
    ended_at: int = 0


class SegmentsResult(BaseModel):
    """An HLS output as ``livekit.SegmentsInfo`` reports it."""

    playlist_name: str
    live_playlist_name: str = ""
    playlist_location: str
    live_playlist_location: str = ""
    duration: int
    size: int
    segment_count: int
    started_at: int
    ended_at: int = 0


class ImagesResult(BaseModel):
    """Thumbnails as ``livekit.ImagesInfo`` reports them."""

    filename_prefix: str
    image_count: int
    started_at: int
    ended_at: int = 0


class StreamResult(BaseModel):
    """A stream URL as ``livekit.StreamInfo`` reports it (``url`` with its stream key masked);
    ``status`` is a ``StreamInfo.Status`` name; ``retries``: reconnections of a broken stream,
    ``last_retry_at`` unix ns of the last one (media/outputs/stream.py)."""

    url: str
    status: Literal["ACTIVE", "FINISHED", "FAILED"]
    error: str = ""
    started_at: int = 0
    ended_at: int = 0
    duration: int = 0
    retries: int = 0
    last_retry_at: int = 0


class TrackReceive(BaseModel):
    """How one subscribed track is being received, since its subscription (:mod:`pyegress.media.source.health`):
    ``frames`` received (video pictures or encoded samples; audio frames or Opus packets), ``frame_rate`` (Hz)
    over the last report interval, and for video ``freezes`` with their total length ``freeze_ns``."""

    track_id: str
    kind: Literal["audio", "video"]
    frames: int = 0
    frame_rate: float = 0.0
    freezes: int = 0
    freeze_ns: int = 0


class UploadTotals(BaseModel):
    """An egress's uploads to one kind of destination (``s3``, ``gcs``, ``azure``, ``sftp``) so far
    (:class:`pyegress.storage.uploads.UploadStats`): ``bytes`` sent, ``retries`` (attempts after a failed one),
    ``failures`` (files whose upload failed for good), ``backup_writes`` (files stored there as the backup
    destination because their own upload failed)."""

    storage: str
    bytes: int = 0
    retries: int = 0
    failures: int = 0
    backup_writes: int = 0


class HandlerEvent(BaseModel):
    """Worker → service.

    ``active``: recording started at ``started_at`` in room ``room_id`` (with the outputs' results,
    so a service that dies right after knows where the files are); ``progress``: results so far while
    active; ``ending``: finishing outputs; ``complete``: done, with results and the ``reason`` it
    ended (one of the ``END_*`` reasons; ``limit_reached`` when a session limit ended it);
    ``aborted``: stopped before anything was recorded (``error`` says why, no outputs are kept);
    ``failed``: ``error`` says why, ``error_code`` is LiveKit's HTTP-style code (500, or 503 when the
    room connection failed), with whatever results exist; ``paused`` / ``resumed``: a ``pause`` /
    ``resume`` command has taken effect. ``reconnects`` lists the gaps (ns) in which the room
    connection was lost and regained. ``manifest_location``: the first manifest the handler wrote (or
    uploaded) before its ``complete`` / ``failed``. For the service's metrics (docs/metrics.md): ``tracks``,
    each subscribed track's receive health (``progress``); ``uploads``, the upload totals so far.
    """

    event: Literal["active", "progress", "ending", "complete", "aborted", "failed", "paused", "resumed"]
    started_at: int = 0
    ended_at: int = 0
    room_id: str = ""
    files: list[FileResult] = []
    segments: list[SegmentsResult] = []
    images: list[ImagesResult] = []
    streams: list[StreamResult] = []
    reason: str = ""
    limit_reached: bool = False
    backup_storage_used: bool = False
    error: str = ""
    error_code: int = 0
    reconnects: list[int] = []
    manifest_location: str = ""  # complete / failed: where the handler's first manifest went
    tracks: list[TrackReceive] = []
    uploads: list[UploadTotals] = []
