"""Egress requests from the operator commands' options (docs/cli.md).

A request starts as the LiveKit request read from ``--request FILE.json`` (protobuf JSON, as ``lk egress
start`` reads it: field names in ``lowerCamelCase`` or ``snake_case``, enums by name), or empty; the options
given then set their fields over it and add their outputs to its output lists (livekit_egress.proto).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message
from livekit.protocol import egress as eg

M = TypeVar("M", bound=Message)


class RequestError(ValueError):
    """Options or a request file that make no request; the message names the option, file or field."""


def read_request(message_type: type[M], path: Path | None) -> M:
    """``message_type`` parsed from the protobuf JSON file ``path`` (an empty one when ``path`` is None).

    Raises:
        RequestError: the file cannot be read, is not JSON, or has a field ``message_type`` lacks (named).
    """
    message = message_type()
    if path is None:
        return message
    try:
        json_format.Parse(path.read_text(), message)
    except (OSError, UnicodeDecodeError, json_format.ParseError) as e:
        raise RequestError(f"--request {path}: {e}") from e
    return message


def set_fields(request: Message, **values) -> None:
    """Set each field given a value; None and False (an option not given) leave the request's own."""
    for name, value in values.items():
        if value is not None and value is not False:
            setattr(request, name, value)


def set_preset(request: Message, preset: str | None) -> None:
    """Set ``preset`` to the EncodingOptionsPreset named ``preset`` (any case), if given.

    Raises:
        RequestError: no such preset (the known names listed).
    """
    if preset is None:
        return
    names = eg.EncodingOptionsPreset.keys()
    name = preset.upper().replace("-", "_")
    if name not in names:
        raise RequestError(f"--preset: unknown preset {preset!r} (one of {', '.join(names)})")
    request.preset = eg.EncodingOptionsPreset.Value(name)


@dataclass
class Outputs:
    """The output options of an encoded egress: a file, HLS segments, streams.

    ``file_type`` is an EncodedFileType name (``mp4``, ``ogg``, ``mp3``; else the server goes by the
    extension); ``segments`` is the segments' ``filename_prefix``, ``playlist`` its ``playlist_name``;
    ``stream_urls`` are RTMP(S) or SRT URLs, one StreamOutput.
    """

    filepath: str | None = None
    file_type: str | None = None
    segments: str | None = None
    playlist: str | None = None
    stream_urls: list[str] = field(default_factory=list)

    def add_to(self, request: Message) -> None:
        """Append these outputs to ``request``'s ``file_outputs``, ``segment_outputs``, ``stream_outputs``.

        Raises:
            RequestError: an unknown file type, ``--playlist`` without ``--segments``, or stream URLs of
                neither or both protocols (LiveKit takes one protocol per StreamOutput).
        """
        if self.filepath is not None or self.file_type is not None:
            out = request.file_outputs.add(filepath=self.filepath or "")
            if self.file_type is not None:
                name = self.file_type.upper()
                if name not in eg.EncodedFileType.keys():
                    raise RequestError(f"--file-type: unknown file type {self.file_type!r} (mp4, ogg or mp3)")
                out.file_type = eg.EncodedFileType.Value(name)
        if self.segments is not None:
            request.segment_outputs.add(filename_prefix=self.segments, playlist_name=self.playlist or "")
        elif self.playlist is not None:
            raise RequestError("--playlist goes with --segments PREFIX")
        if self.stream_urls:
            request.stream_outputs.add(protocol=stream_protocol(self.stream_urls), urls=self.stream_urls)


def stream_protocol(urls: list[str]) -> int:
    """The StreamProtocol of ``urls``: RTMP for ``rtmp://`` / ``rtmps://``, SRT for ``srt://``.

    Raises:
        RequestError: a URL of another scheme, or both protocols at once.
    """
    kinds = set()
    for url in urls:
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme not in ("rtmp", "rtmps", "srt"):
            raise RequestError(f"--stream-url {url.split('?')[0]!r}: needs rtmp://, rtmps:// or srt://")
        kinds.add(eg.StreamProtocol.SRT if scheme == "srt" else eg.StreamProtocol.RTMP)
    if len(kinds) > 1:
        raise RequestError("--stream-url: RTMP and SRT URLs cannot share one egress's stream output")
    return kinds.pop()


def require(request: Message, what: str, **fields: str) -> None:
    """Raise RequestError naming each option in ``fields`` (``field name → option``) whose field is unset.

    ``what`` names the egress type in the message.
    """
    missing = [option for name, option in fields.items() if not getattr(request, name)]
    if missing:
        raise RequestError(f"{what} needs {', '.join(missing)} (or the field in --request)")


def require_output(request: Message, what: str, options: str = "--filepath, --segments or --stream-url") -> None:
    """Raise RequestError naming ``options`` unless ``request`` has an output: an entry in one of its output
    lists or its legacy ``output`` oneof set (a TrackEgressRequest has only the oneof)."""
    fields = request.DESCRIPTOR.fields_by_name
    lists = [name for name in ("file_outputs", "segment_outputs", "stream_outputs", "image_outputs") if name in fields]
    oneof = request.DESCRIPTOR.oneofs_by_name.get("output")
    if not (oneof and request.WhichOneof("output")) and not any(len(getattr(request, name)) for name in lists):
        raise RequestError(f"{what} needs an output: {options} (or outputs in --request)")
