"""``pyegress egress``: start, list, watch, update and stop egresses through any LiveKit Egress API, in the
manner of LiveKit's ``lk egress`` (docs/cli.md). Requests go through livekit-api's EgressService.

livekit-api, the protobuf messages and rich are imported inside the commands: ``pyegress serve`` and the other
commands do not pay for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

from . import options as opt
from .connection import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, Connection, fail

egress_app = typer.Typer(help="Start, list, watch, update and stop egresses through any LiveKit Egress API "
                              "(pyegress or livekit-server), as LiveKit's `lk egress` does.", no_args_is_help=True)
start_app = typer.Typer(invoke_without_command=True)
egress_app.add_typer(start_app, name="start")


@contextmanager
def request_errors() -> Iterator[None]:
    """Exit 2 with the message of a RequestError (bad options or ``--request`` file) raised inside."""
    from .requests import RequestError

    try:
        yield
    except RequestError as e:
        fail(str(e), EXIT_USAGE)


def print_info(info, as_json: bool) -> None:
    """One EgressInfo: protobuf JSON, or ``key  value`` lines."""
    from .display import describe, egress_json, now_ns

    typer.echo(egress_json(info) if as_json else "\n".join(describe(info, now_ns())))


def send(conn: Connection, method: str, request, as_json: bool) -> None:
    """Call EgressService ``method`` with ``request`` and print the EgressInfo it answers."""
    print_info(conn.run(lambda egress: getattr(egress, method)(request)), as_json)


def encoded_outputs(request, what: str, filepath, file_type, segments, playlist, stream_url, preset) -> None:
    """Add the output options to an encoded egress's ``request``, set its preset, and require an output."""
    from .requests import Outputs, require_output, set_preset

    Outputs(filepath=filepath, file_type=file_type, segments=segments, playlist=playlist,
            stream_urls=stream_url or []).add_to(request)
    set_preset(request, preset)
    require_output(request, what)


@start_app.callback()
def start(ctx: typer.Context, request: opt.Request = None, as_json: opt.Json = False, url: opt.Url = None,
          api_key: opt.ApiKey = None, api_secret: opt.ApiSecret = None) -> None:
    """Start an egress of a TYPE below, or from a StartEgressRequest file.

    `pyegress egress start TYPE --help` lists a type's options; `--request FILE.json` takes its whole request
    in protobuf JSON. With no TYPE, `--request FILE.json` is LiveKit's StartEgressRequest (a template, web or
    media source; StartEgress).
    """
    if ctx.invoked_subcommand is not None:
        if request or as_json or url or api_key or api_secret:
            fail(f"put the options after the egress type: pyegress egress start {ctx.invoked_subcommand} "
                 f"[OPTIONS]", EXIT_USAGE)
        return
    if request is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(EXIT_USAGE)
    from livekit.protocol import egress as eg

    from .requests import read_request

    with request_errors():
        req = read_request(eg.StartEgressRequest, request)
    send(Connection.resolve(url, api_key, api_secret), "start_egress", req, as_json)


@start_app.command("room-composite")
def start_room_composite(room: opt.Room = None, layout: opt.Layout = None, audio_only: opt.AudioOnly = False,
                         video_only: opt.VideoOnly = False, filepath: opt.Filepath = None,
                         file_type: opt.FileType = None, segments: opt.Segments = None,
                         playlist: opt.Playlist = None, stream_url: opt.StreamUrl = None,
                         preset: opt.Preset = None, request: opt.Request = None, as_json: opt.Json = False,
                         url: opt.Url = None, api_key: opt.ApiKey = None, api_secret: opt.ApiSecret = None) -> None:
    """Record or stream a room's composite (RoomCompositeEgressRequest)."""
    from livekit.protocol import egress as eg

    from .requests import read_request, require, set_fields

    with request_errors():
        req = read_request(eg.RoomCompositeEgressRequest, request)
        set_fields(req, room_name=room, layout=layout, audio_only=audio_only, video_only=video_only)
        require(req, "room-composite", room_name="--room")
        encoded_outputs(req, "room-composite", filepath, file_type, segments, playlist, stream_url, preset)
    send(Connection.resolve(url, api_key, api_secret), "start_room_composite_egress", req, as_json)


@start_app.command("web")
def start_web(page_url: str = typer.Option(None, "--page-url", help="the page to record (the request's url)",
                                           show_default=False),
              await_start_signal: bool = typer.Option(False, "--await-start-signal",
                                                      help="wait for START_RECORDING on the page's console"),
              audio_only: opt.AudioOnly = False, video_only: opt.VideoOnly = False, filepath: opt.Filepath = None,
              file_type: opt.FileType = None, segments: opt.Segments = None, playlist: opt.Playlist = None,
              stream_url: opt.StreamUrl = None, preset: opt.Preset = None, request: opt.Request = None,
              as_json: opt.Json = False, url: opt.Url = None, api_key: opt.ApiKey = None,
              api_secret: opt.ApiSecret = None) -> None:
    """Record or stream a web page (WebEgressRequest)."""
    from livekit.protocol import egress as eg

    from .requests import read_request, require, set_fields

    with request_errors():
        req = read_request(eg.WebEgressRequest, request)
        set_fields(req, url=page_url, audio_only=audio_only, video_only=video_only,
                   await_start_signal=await_start_signal)
        require(req, "web", url="--page-url")
        encoded_outputs(req, "web", filepath, file_type, segments, playlist, stream_url, preset)
    send(Connection.resolve(url, api_key, api_secret), "start_web_egress", req, as_json)


@start_app.command("participant")
def start_participant(room: opt.Room = None,
                      identity: str = typer.Option(None, "--identity", help="the participant's identity",
                                                   show_default=False),
                      screen_share: bool = typer.Option(False, "--screen-share",
                                                        help="their screen share instead of their camera"),
                      filepath: opt.Filepath = None, file_type: opt.FileType = None, segments: opt.Segments = None,
                      playlist: opt.Playlist = None, stream_url: opt.StreamUrl = None, preset: opt.Preset = None,
                      request: opt.Request = None, as_json: opt.Json = False, url: opt.Url = None,
                      api_key: opt.ApiKey = None, api_secret: opt.ApiSecret = None) -> None:
    """Record or stream one participant's camera (or screen share) and microphone (ParticipantEgressRequest)."""
    from livekit.protocol import egress as eg

    from .requests import read_request, require, set_fields

    with request_errors():
        req = read_request(eg.ParticipantEgressRequest, request)
        set_fields(req, room_name=room, identity=identity, screen_share=screen_share)
        require(req, "participant", room_name="--room", identity="--identity")
        encoded_outputs(req, "participant", filepath, file_type, segments, playlist, stream_url, preset)
    send(Connection.resolve(url, api_key, api_secret), "start_participant_egress", req, as_json)


@start_app.command("track-composite")
def start_track_composite(room: opt.Room = None,
                          audio_track_id: str = typer.Option(None, "--audio-track-id", show_default=False,
                                                             help="the audio track's SID (TR_...)"),
                          video_track_id: str = typer.Option(None, "--video-track-id", show_default=False,
                                                             help="the video track's SID (TR_...)"),
                          filepath: opt.Filepath = None, file_type: opt.FileType = None,
                          segments: opt.Segments = None, playlist: opt.Playlist = None,
                          stream_url: opt.StreamUrl = None, preset: opt.Preset = None, request: opt.Request = None,
                          as_json: opt.Json = False, url: opt.Url = None, api_key: opt.ApiKey = None,
                          api_secret: opt.ApiSecret = None) -> None:
    """Record or stream an audio and a video track together (TrackCompositeEgressRequest)."""
    from livekit.protocol import egress as eg

    from .requests import RequestError, read_request, require, set_fields

    with request_errors():
        req = read_request(eg.TrackCompositeEgressRequest, request)
        set_fields(req, room_name=room, audio_track_id=audio_track_id, video_track_id=video_track_id)
        require(req, "track-composite", room_name="--room")
        if not (req.audio_track_id or req.video_track_id):
            raise RequestError("track-composite needs --audio-track-id or --video-track-id (or both)")
        encoded_outputs(req, "track-composite", filepath, file_type, segments, playlist, stream_url, preset)
    send(Connection.resolve(url, api_key, api_secret), "start_track_composite_egress", req, as_json)


@start_app.command("track")
def start_track(room: opt.Room = None,
                track_id: str = typer.Option(None, "--track-id", help="the track's SID (TR_...)", show_default=False),
                filepath: str = typer.Option(None, "--filepath", show_default=False,
                                             help="the file (its container follows the track's codec)"),
                websocket_url: str = typer.Option(None, "--websocket-url", show_default=False,
                                                  help="send the audio as raw PCM to this WebSocket instead"),
                request: opt.Request = None, as_json: opt.Json = False, url: opt.Url = None,
                api_key: opt.ApiKey = None, api_secret: opt.ApiSecret = None) -> None:
    """Record one track without transcoding (TrackEgressRequest)."""
    from livekit.protocol import egress as eg

    from .requests import RequestError, read_request, require, require_output, set_fields

    with request_errors():
        req = read_request(eg.TrackEgressRequest, request)
        set_fields(req, room_name=room, track_id=track_id)
        if filepath is not None and websocket_url is not None:
            raise RequestError("track takes --filepath or --websocket-url, not both")
        if filepath is not None:
            req.file.filepath = filepath
        set_fields(req, websocket_url=websocket_url)
        require(req, "track", room_name="--room", track_id="--track-id")
        require_output(req, "track", "--filepath or --websocket-url")
    send(Connection.resolve(url, api_key, api_secret), "start_track_egress", req, as_json)


@egress_app.command("list")
def list_egress(room: str = typer.Option(None, "--room", help="only this room's", show_default=False),
                egress_id: list[str] = typer.Option(None, "--id", help="only this egress; repeat for more",
                                                    show_default=False),
                active: bool = typer.Option(False, "--active", "-a", help="only those not ended"),
                as_json: bool = typer.Option(False, "--json", help="a JSON array of LiveKit's EgressInfo JSON"),
                url: opt.Url = None, api_key: opt.ApiKey = None, api_secret: opt.ApiSecret = None) -> None:
    """List egresses (ListEgress): active and ended ones the server keeps."""
    from livekit import api

    from .display import console, egress_list_json, egress_table, now_ns

    conn = Connection.resolve(url, api_key, api_secret)

    async def listed(egress):
        requests = [api.ListEgressRequest(room_name=room or "", egress_id=i, active=active) for i in egress_id or [""]]
        return [item for r in requests for item in (await egress.list_egress(r)).items]

    items = conn.run(listed)
    if as_json:
        typer.echo(egress_list_json(items))
    elif not items:
        typer.echo("no egress")
    else:
        console().print(egress_table(items, now_ns(), wide=True))


@egress_app.command("stop")
def stop(egress_ids: list[str] = typer.Argument(..., metavar="EGRESS_ID...", help="the egresses to stop"),
         wait: bool = typer.Option(False, "--wait", help="wait until each has ended (exit 1 if one FAILED or was "
                                                         "ABORTED; Ctrl-C stops waiting)"),
         as_json: opt.Json = False, url: opt.Url = None, api_key: opt.ApiKey = None,
         api_secret: opt.ApiSecret = None) -> None:
    """Stop egresses (StopEgress).

    Each finishes its outputs and ends EGRESS_COMPLETE, or EGRESS_ABORTED if it had not started.
    """
    from livekit import api

    from .connection import twirp_message
    from .display import UNSUCCESSFUL
    from .follow import Interrupts, StillRunning, follow, still_running_message

    conn = Connection.resolve(url, api_key, api_secret)

    async def stop_all(egress):
        stopped, failed = [], False
        for egress_id in egress_ids:
            try:
                stopped.append(await egress.stop_egress(api.StopEgressRequest(egress_id=egress_id)))
            except api.TwirpError as e:
                typer.echo(f"pyegress: {egress_id}: {twirp_message(e)}", err=True)
                failed = True
        if wait:
            with Interrupts() as interrupts:
                stopped = [await follow(egress, info, interrupts, lambda _: None, stop_requested=True)
                           for info in stopped]
        return stopped, failed or any(i.status in UNSUCCESSFUL for i in stopped)

    try:
        infos, failed = conn.run(stop_all)
    except StillRunning as e:
        fail(still_running_message(e.info), EXIT_INTERRUPTED)
    if as_json and len(egress_ids) > 1:
        from .display import egress_list_json

        typer.echo(egress_list_json(infos))
    else:
        for info in infos:
            print_info(info, as_json)
    if failed:
        raise typer.Exit(EXIT_FAILED)


@egress_app.command("update-layout")
def update_layout(egress_id: str = typer.Argument(..., metavar="EGRESS_ID"),
                  layout: str = typer.Argument(..., metavar="LAYOUT", help="grid, speaker, single-speaker, ..."),
                  as_json: opt.Json = False, url: opt.Url = None, api_key: opt.ApiKey = None,
                  api_secret: opt.ApiSecret = None) -> None:
    """Change a running room composite's layout (UpdateLayout)."""
    from livekit import api

    send(Connection.resolve(url, api_key, api_secret), "update_layout",
         api.UpdateLayoutRequest(egress_id=egress_id, layout=layout), as_json)


@egress_app.command("update-stream")
def update_stream(egress_id: str = typer.Argument(..., metavar="EGRESS_ID"),
                  add_url: list[str] = typer.Option(None, "--add-url", help="start streaming to this URL; repeat "
                                                                           "for more", show_default=False),
                  remove_url: list[str] = typer.Option(None, "--remove-url", help="stop streaming to this URL; "
                                                                                 "repeat for more",
                                                       show_default=False),
                  as_json: opt.Json = False, url: opt.Url = None, api_key: opt.ApiKey = None,
                  api_secret: opt.ApiSecret = None) -> None:
    """Add or remove a running egress's stream URLs (UpdateStream)."""
    from livekit import api

    if not add_url and not remove_url:
        fail("update-stream needs --add-url or --remove-url", EXIT_USAGE)
    send(Connection.resolve(url, api_key, api_secret), "update_stream",
         api.UpdateStreamRequest(egress_id=egress_id, add_output_urls=add_url or [],
                                 remove_output_urls=remove_url or []), as_json)


@egress_app.command("watch")
def watch(room: str = typer.Option(None, "--room", help="only this room's", show_default=False),
          url: opt.Url = None, api_key: opt.ApiKey = None, api_secret: opt.ApiSecret = None) -> None:
    """A live table of the active egresses until Ctrl-C.

    Egress id, type, room, status, duration and size, refreshed every second.
    """
    import asyncio

    import aiohttp
    from livekit import api
    from rich.live import Live

    from .connection import twirp_message
    from .display import console, egress_table, now_ns
    from .follow import POLL_INTERVAL_S, Interrupts

    conn = Connection.resolve(url, api_key, api_secret)
    out = console()
    request = api.ListEgressRequest(room_name=room or "", active=True)

    async def refresh(egress):
        items = (await egress.list_egress(request)).items  # the first answer's error ends the command
        with Interrupts() as interrupts, Live(console=out, auto_refresh=False) as live:
            note = ""
            while not interrupts.count:
                title = f"active egresses at {conn.display_url}, {now_local()}"
                caption = note or ("no active egress; " if not items else "") + "Ctrl-C quits"
                live.update(egress_table(items, now_ns(), wide=False, title=title, caption=caption), refresh=True)
                await interrupts.sleep(POLL_INTERVAL_S)
                if interrupts.count:
                    break
                try:  # later errors (a server restarting) are shown and retried
                    items, note = (await egress.list_egress(request)).items, ""
                except api.TwirpError as e:
                    note = f"refresh failed: {twirp_message(e)}; retrying"
                except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                    note = f"refresh failed: {type(e).__name__}: {e}; retrying"

    conn.run(refresh)


def now_local() -> str:
    from datetime import datetime

    return datetime.now().strftime("%H:%M:%S")
