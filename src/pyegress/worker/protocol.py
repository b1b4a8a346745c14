"""The messages between the service and an egress worker process.

The service writes one :class:`JobSpec` JSON line to the worker's stdin, then
:class:`Command` lines; the worker writes :class:`WorkerEvent` JSON lines to
stdout and logs to stderr. Everything the worker needs is resolved by the
service first (paths, encoding, token), so the worker never sees a request.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from ..media.encoding import EncodingSettings


class FileTarget(BaseModel):
    """One file to write: ``path`` is the absolute local path, ``filename`` what EgressInfo reports."""

    path: str
    filename: str


class JobSpec(BaseModel):
    """A room composite job, fully resolved.

    ``empty_timeout_s``: seconds after the last participant left (having seen
    at least one) before the egress ends by itself.
    """

    egress_id: str
    ws_url: str
    token: str
    room_name: str
    layout: str = "grid"
    audio: bool = True
    video: bool = True
    encoding: EncodingSettings = EncodingSettings()
    files: list[FileTarget] = []
    empty_timeout_s: float = 10.0


class Command(BaseModel):
    """Service → worker: ``stop`` ends the egress, ``layout`` switches the composite layout."""

    cmd: Literal["stop", "layout"]
    layout: str = ""


class FileResult(BaseModel):
    """A finished file; times in ns since the Unix epoch, ``duration`` in ns, ``size`` in bytes."""

    filename: str
    path: str
    size: int
    duration: int
    started_at: int
    ended_at: int


class WorkerEvent(BaseModel):
    """Worker → service.

    ``active``: recording started at ``started_at`` (ns) in room ``room_id``;
    ``ending``: finishing outputs; ``complete``: done, with ``files`` and the
    ``reason`` it ended; ``failed``: ``error`` says why.
    """

    event: Literal["active", "ending", "complete", "failed"]
    started_at: int = 0
    ended_at: int = 0
    room_id: str = ""
    files: list[FileResult] = []
    reason: str = ""
    error: str = ""
