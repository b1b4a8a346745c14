"""``pyegress record ROOM``: record a room until Ctrl-C, showing its progress, then print the recording.

It starts a room composite to a file (RoomCompositeEgressRequest), follows it with ListEgress every second,
sends StopEgress on Ctrl-C (SIGINT) or SIGTERM and waits for the terminal status (docs/cli.md,
docs/egress-states.md). The egress also ends by itself, e.g. when the room empties.
"""

from __future__ import annotations

import typer

from . import options as opt
from .connection import EXIT_FAILED, EXIT_INTERRUPTED, Connection, fail

DEFAULT_FILEPATH = "{room_name}-{time}"
"""Without an extension the server picks the container: MP4, or OGG for audio only."""


def record(room: str = typer.Argument(..., metavar="ROOM", help="the room to record"),
           layout: opt.Layout = None, audio_only: opt.AudioOnly = False, video_only: opt.VideoOnly = False,
           filepath: str = typer.Option(DEFAULT_FILEPATH, "--filepath",
                                        help="the file: a path or template ({room_name}, {time}, ...), relative to "
                                             "the server's recordings directory or storage"),
           preset: opt.Preset = None, as_json: opt.Json = False, url: opt.Url = None, api_key: opt.ApiKey = None,
           api_secret: opt.ApiSecret = None) -> None:
    """Record a room to a file until Ctrl-C, showing progress; then print the file.

    A room composite of ROOM to a file, with a live line of its status, duration and size. Ctrl-C (or SIGTERM)
    stops it and waits for its end, unless it ends by itself first (the room empties); then its file's
    location, duration and size are printed. Exit 1 if it ends FAILED or ABORTED; a second Ctrl-C stops
    waiting (exit 130).
    """
    from livekit.protocol import egress as eg

    from .display import UNSUCCESSFUL, console, now_ns, progress_line
    from .egress import print_info, request_errors
    from .follow import Interrupts, StillRunning, follow, still_running_message
    from .requests import set_fields, set_preset

    request = eg.RoomCompositeEgressRequest(room_name=room, file_outputs=[eg.EncodedFileOutput(filepath=filepath)])
    set_fields(request, layout=layout, audio_only=audio_only, video_only=video_only)
    with request_errors():
        set_preset(request, preset)
    conn = Connection.resolve(url, api_key, api_secret)
    err = console(stderr=True)

    async def run(egress):
        from rich.live import Live

        with Interrupts() as interrupts:
            info = await egress.start_room_composite_egress(request)
            err.print(f"recording room {room} as {info.egress_id}; Ctrl-C stops", highlight=False)
            with Live(progress_line(info, now_ns()), console=err, auto_refresh=False) as live:
                return await follow(egress, info, interrupts,
                                    lambda i: live.update(progress_line(i, now_ns()), refresh=True))

    try:
        info = conn.run(run)
    except StillRunning as e:
        fail(still_running_message(e.info), EXIT_INTERRUPTED)
    print_info(info, as_json)
    if info.status in UNSUCCESSFUL:
        raise typer.Exit(EXIT_FAILED)
