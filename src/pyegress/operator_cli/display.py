"""EgressInfo for people: its type, room, status, duration and output size as the operator commands show them.

Times in EgressInfo are Unix ns (``started_at``, ``ended_at``; FileInfo ``duration`` too), sizes bytes
(livekit_egress.proto). ``--json`` output skips all this: it is ``MessageToJson`` of the message itself.
"""

from __future__ import annotations

import json
import time
from datetime import datetime

from google.protobuf import json_format
from livekit.protocol import egress as eg
from rich import filesize
from rich.console import Console
from rich.table import Table

S = eg.EgressStatus
TERMINAL = frozenset({S.EGRESS_COMPLETE, S.EGRESS_FAILED, S.EGRESS_ABORTED, S.EGRESS_LIMIT_REACHED})
"""Statuses an egress never leaves (docs/egress-states.md)."""
UNSUCCESSFUL = frozenset({S.EGRESS_FAILED, S.EGRESS_ABORTED})
"""Terminal statuses that leave no complete recording: the commands that wait for them exit 1."""


def egress_json(info: eg.EgressInfo) -> str:
    """LiveKit's protobuf JSON of one EgressInfo (``lowerCamelCase``, enums by name, int64 as strings), with
    fields at their default too, so ``status`` is there when it is EGRESS_STARTING (0)."""
    return json_format.MessageToJson(info, always_print_fields_with_no_presence=True)


def egress_list_json(items) -> str:
    """A JSON array of EgressInfo as :func:`egress_json` writes each (``lk egress list --json`` prints an
    array too)."""
    return json.dumps([json_format.MessageToDict(i, always_print_fields_with_no_presence=True) for i in items],
                      indent=2)


def now_ns() -> int:
    return time.time_ns()


def status_name(info: eg.EgressInfo) -> str:
    return S.Name(info.status)


def egress_type(info: eg.EgressInfo) -> str:
    """The request's kind: ``room_composite``, ``web``, ``participant``, ``track_composite``, ``track``; a
    StartEgress request by its source (``egress:template``, ``egress:web``, ``egress:media``)."""
    kind = info.WhichOneof("request") or "-"
    if kind == "egress":
        return f"egress:{info.egress.WhichOneof('source') or '-'}"
    return kind


def room_or_url(info: eg.EgressInfo) -> str:
    """The room recorded, or the page of a web egress (which has no room)."""
    if info.room_name:
        return info.room_name
    web = info.web if info.HasField("web") else info.egress.web if info.HasField("egress") else None
    return web.url if web is not None and web.url else "-"


def elapsed_s(info: eg.EgressInfo, now: int) -> float | None:
    """Seconds from ``started_at`` to ``ended_at``, or to ``now`` (ns) while it has not ended; None before it
    started."""
    if not info.started_at:
        return None
    return max(0, (info.ended_at or now) - info.started_at) / 1e9


def output_size(info: eg.EgressInfo) -> int | None:
    """Bytes written to files and HLS segments so far; None for an egress with neither (streams only).

    The result lists come first, the legacy ``result`` oneof only when they are empty (docs/compatibility.md).
    """
    files = list(info.file_results) or ([info.file] if info.HasField("file") else [])
    segments = list(info.segment_results) or ([info.segments] if info.HasField("segments") else [])
    if not files and not segments:
        return None
    return sum(f.size for f in files) + sum(s.size for s in segments)


def format_duration(seconds: float | None) -> str:
    """``H:MM:SS`` (``-`` for None)."""
    if seconds is None:
        return "-"
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def format_size(size: int | None) -> str:
    """Bytes in SI units (``1.2 MB``), ``-`` for None."""
    return "-" if size is None else filesize.decimal(size)


def format_time(ns: int) -> str:
    """A Unix ns time in local time, to the second (``-`` for 0, never set)."""
    return datetime.fromtimestamp(ns / 1e9).strftime("%Y-%m-%d %H:%M:%S") if ns else "-"


def progress_line(info: eg.EgressInfo, now: int) -> str:
    """One line of a running egress: status, duration, size."""
    return (f"{info.egress_id}  {status_name(info)}  {format_duration(elapsed_s(info, now))}  "
            f"{format_size(output_size(info))}")


def describe(info: eg.EgressInfo, now: int) -> list[str]:
    """An EgressInfo as ``key  value`` lines: id, status, type, room, times, each output's result, the error."""
    rows = [("egress", info.egress_id), ("status", status_name(info)), ("type", egress_type(info)),
            ("room", room_or_url(info))]
    if info.started_at:
        rows.append(("started", format_time(info.started_at)))
    if info.ended_at:
        rows.append(("ended", format_time(info.ended_at)))
    rows.append(("duration", format_duration(elapsed_s(info, now))))
    for f in list(info.file_results) or ([info.file] if info.HasField("file") else []):
        rows.append(("file", f"{f.location or f.filename}  {f.duration / 1e9:.1f} s  {format_size(f.size)}"))
    for s in list(info.segment_results) or ([info.segments] if info.HasField("segments") else []):
        rows.append(("segments", f"{s.playlist_location or s.playlist_name}  {s.segment_count} segments  "
                                 f"{s.duration / 1e9:.1f} s  {format_size(s.size)}"))
    for s in list(info.stream_results) or (list(info.stream.info) if info.HasField("stream") else []):
        rows.append(("stream", f"{s.url}  {eg.StreamInfo.Status.Name(s.status)}" + (f"  {s.error}" if s.error else "")))
    for i in info.image_results:
        rows.append(("images", f"{i.filename_prefix}  {i.image_count} images"))
    if info.manifest_location:
        rows.append(("manifest", info.manifest_location))
    if info.error:
        code = f" (error_code {info.error_code})" if info.error_code else ""
        rows.append(("error", info.error + code))
    if info.details:
        rows.append(("details", info.details))
    return [f"{key:<9} {value}" for key, value in rows]


def egress_table(items, now: int, *, wide: bool, title: str | None = None, caption: str | None = None) -> Table:
    """A table of egresses: id, type, room (or web page), status, duration, size; ``wide`` adds when each
    started and its error."""
    table = Table(title=title, caption=caption, title_justify="left", caption_justify="left")
    for name in ("egress id", "type", "room", "status"):
        table.add_column(name, no_wrap=True)
    if wide:
        table.add_column("started", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    if wide:
        table.add_column("error")
    for info in items:
        row = [info.egress_id, egress_type(info), room_or_url(info), status_name(info)]
        if wide:
            row.append(format_time(info.started_at))
        row += [format_duration(elapsed_s(info, now)), format_size(output_size(info))]
        if wide:
            row.append(info.error)
        table.add_row(*row)
    return table


def console(*, stderr: bool = False) -> Console:
    """A rich console for the terminal; into a pipe or file, wide enough that no table cell is cut short."""
    out = Console(stderr=stderr)
    return out if out.is_terminal else Console(stderr=stderr, width=1000)
