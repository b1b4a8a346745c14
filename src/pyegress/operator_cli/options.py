"""The operator commands' shared options (typer ``Annotated`` types), named after the request fields they set
(livekit_egress.proto). Each command that talks to a server takes the three connection options."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Url = Annotated[str | None, typer.Option(
    "--url", help="the Egress API: pyegress or livekit-server, http(s):// or ws(s):// (env LIVEKIT_URL)",
    show_default=False)]
ApiKey = Annotated[str | None, typer.Option(
    "--api-key", help="LiveKit API key (env LIVEKIT_API_KEY)", show_default=False)]
ApiSecret = Annotated[str | None, typer.Option(
    "--api-secret", help="LiveKit API secret (env LIVEKIT_API_SECRET)", show_default=False)]

Json = Annotated[bool, typer.Option("--json", help="print LiveKit's protobuf JSON of the EgressInfo (for scripts)")]
Request = Annotated[Path | None, typer.Option(
    "--request", help="a whole LiveKit request of this type in protobuf JSON (as `lk egress start` reads it); "
                      "the other options are set over it", exists=True, dir_okay=False, show_default=False)]

Room = Annotated[str | None, typer.Option("--room", help="room_name", show_default=False)]
Layout = Annotated[str | None, typer.Option(
    "--layout", help="grid, speaker, single-speaker (-light/-dark), or your template's", show_default=False)]
AudioOnly = Annotated[bool, typer.Option("--audio-only", help="audio only (an OGG file unless told otherwise)")]
VideoOnly = Annotated[bool, typer.Option("--video-only", help="video only")]
Preset = Annotated[str | None, typer.Option(
    "--preset", help="encoding preset: H264_720P_30 (default), H264_1080P_30, PORTRAIT_H264_720P_30, ...",
    show_default=False)]

Filepath = Annotated[str | None, typer.Option(
    "--filepath", help="file output: a path or template ({room_name}, {time}, ...); its extension picks MP4, OGG, "
                       "WebM or MP3", show_default=False)]
FileType = Annotated[str | None, typer.Option("--file-type", help="file container: mp4, ogg or mp3",
                                              show_default=False)]
Segments = Annotated[str | None, typer.Option(
    "--segments", help="HLS output: the segments' filename prefix (path or template)", show_default=False)]
Playlist = Annotated[str | None, typer.Option(
    "--playlist", help="HLS playlist name (default: after --segments)", show_default=False)]
StreamUrl = Annotated[list[str] | None, typer.Option(
    "--stream-url", help="an RTMP(S) or SRT URL to stream to; repeat for more", show_default=False)]
