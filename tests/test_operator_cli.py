"""The operator commands without a server: usage errors, request files, an unreachable server, secrets in help.

Against real servers: tests/test_operator_cli_e2e.py.
"""

from __future__ import annotations

import json

import pytest
from livekit.protocol import egress as eg
from typer.testing import CliRunner

from pyegress.cli import app
from pyegress.devtools.process import free_port
from pyegress.operator_cli.requests import Outputs, RequestError, read_request

SECRET = "s3cr3t-never-shown"
ENV = {"LIVEKIT_URL": "http://127.0.0.1:1", "LIVEKIT_API_KEY": "key", "LIVEKIT_API_SECRET": SECRET}


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, list(args), env=ENV if env is None else env)


def test_missing_connection_settings_are_named():
    result = run("egress", "list", env={"LIVEKIT_URL": "", "LIVEKIT_API_KEY": "", "LIVEKIT_API_SECRET": ""})
    assert result.exit_code == 2
    assert "--url / LIVEKIT_URL" in result.stderr and "--api-secret / LIVEKIT_API_SECRET" in result.stderr


def test_url_without_scheme_is_refused():
    result = run("egress", "list", "--url", "localhost:7880")
    assert result.exit_code == 2 and "--url must be" in result.stderr


def test_unreachable_server_is_one_line_without_secret():
    url = f"http://127.0.0.1:{free_port()}"
    result = run("egress", "list", "--url", url)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"pyegress: cannot reach {url}") and "Traceback" not in result.output
    assert SECRET not in result.output


def test_help_never_shows_the_secret_from_the_environment():
    for args in (["egress", "list", "--help"], ["record", "--help"], ["egress", "start", "room-composite", "--help"]):
        result = run(*args)
        assert result.exit_code == 0 and "LIVEKIT_API_SECRET" in result.stdout and SECRET not in result.stdout


@pytest.mark.parametrize("args, message", [
    (["egress", "start", "room-composite", "--filepath", "a.mp4"], "room-composite needs --room"),
    (["egress", "start", "room-composite", "--room", "r"], "room-composite needs an output"),
    (["egress", "start", "participant", "--room", "r", "--filepath", "a.mp4"], "participant needs --identity"),
    (["egress", "start", "track-composite", "--room", "r", "--filepath", "a.mp4"], "--audio-track-id or"),
    (["egress", "start", "track", "--room", "r", "--track-id", "TR_x"], "track needs an output"),
    (["egress", "start", "web", "--filepath", "a.mp4"], "web needs --page-url"),
    (["egress", "start", "room-composite", "--room", "r", "--filepath", "a", "--preset", "H264_4K"],
     "--preset: unknown preset 'H264_4K'"),
    (["egress", "start", "room-composite", "--room", "r", "--stream-url", "http://x/live"],
     "needs rtmp://, rtmps:// or srt://"),
    (["egress", "start", "--json", "room-composite", "--room", "r"], "put the options after the egress type"),
    (["egress", "update-stream", "EG_x"], "needs --add-url or --remove-url"),
])
def test_bad_options_name_the_option(args, message):
    result = run(*args)
    assert result.exit_code == 2 and message in result.stderr, result.output


def test_request_file_with_an_unknown_field_names_it(tmp_path):
    path = tmp_path / "req.json"
    path.write_text(json.dumps({"roomName": "r", "fileOutputs": [{"filepath": "a.mp4"}], "layoutt": "grid"}))
    result = run("egress", "start", "room-composite", "--request", str(path))
    assert result.exit_code == 2 and f"--request {path}" in result.stderr and "layoutt" in result.stderr


def test_options_are_set_over_the_request_file(tmp_path):
    """camelCase and snake_case names, enums by name, as LiveKit's protobuf JSON; options add outputs."""
    path = tmp_path / "req.json"
    path.write_text(json.dumps({"room_name": "from-file", "layout": "speaker", "preset": "H264_1080P_30",
                                "fileOutputs": [{"filepath": "a.mp4"}]}))
    request = read_request(eg.RoomCompositeEgressRequest, path)
    request.room_name = "from-option"
    Outputs(segments="hls/seg", stream_urls=["srt://127.0.0.1:9000"]).add_to(request)
    assert (request.room_name, request.layout, request.preset) == ("from-option", "speaker", eg.H264_1080P_30)
    assert [f.filepath for f in request.file_outputs] == ["a.mp4"]
    assert request.segment_outputs[0].filename_prefix == "hls/seg"
    assert request.stream_outputs[0].protocol == eg.StreamProtocol.SRT
    with pytest.raises(RequestError, match="cannot share"):
        Outputs(stream_urls=["srt://h:1", "rtmp://h/live"]).add_to(eg.RoomCompositeEgressRequest())
