"""The operator commands (``pyegress egress ...``, ``pyegress record``) as an operator runs them, against a real
livekit-server with generated publishers and a real ``pyegress serve``, and against livekit-server's own Egress
API with a pyegress worker over Redis/psrpc. ``watch`` and ``record`` run in a pseudo-terminal and get Ctrl-C.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time

import pytest
from livekit import api
from typer.testing import CliRunner

from pyegress.cli import app
from pyegress.devtools.livekit_server import LiveKitServer
from pyegress.devtools.probe import ffprobe
from pyegress.devtools.pyegress_server import PyegressWorker
from support.redis_server import RedisServer
from support.terminal import Terminal

from conftest import _busy_handlers, publisher_factory

PYEGRESS = [sys.executable, "-m", "pyegress"]


def env_for(url: str, lk: LiveKitServer) -> dict[str, str]:
    """The environment `lk` reads: the Egress API's URL and the key pair."""
    return {"LIVEKIT_URL": url, "LIVEKIT_API_KEY": lk.api_key, "LIVEKIT_API_SECRET": lk.api_secret}


class Cli:
    """``pyegress`` commands run in-process by typer's CliRunner with ``env``."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def __call__(self, *args: str, status: int = 0):
        result = CliRunner().invoke(app, list(args), env=self.env)
        assert result.exit_code == status, f"exit {result.exit_code}: {result.output}"
        return result

    def info(self, egress_id: str) -> dict:
        """The egress as `list --json` shows it (LiveKit's EgressInfo JSON)."""
        items = json.loads(self("egress", "list", "--id", egress_id, "--json").stdout)
        assert len(items) == 1, items
        return items[0]

    def wait_status(self, egress_id: str, status: str, timeout_s: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout_s
        while (info := self.info(egress_id))["status"] != status:
            assert time.monotonic() < deadline, f"{egress_id} never reached {status}: {info}"
            time.sleep(0.3)
        return info


@pytest.fixture
def cli(egress_server, livekit):
    """The CLI pointed at ``pyegress serve`` through LIVEKIT_URL / LIVEKIT_API_KEY / LIVEKIT_API_SECRET. At
    teardown it waits for the test's handlers to exit, as ``egress_api`` does (their cores count against the
    shared server's CPU budget)."""
    yield Cli(env_for(egress_server.url, livekit))
    deadline = time.monotonic() + 30
    while _busy_handlers(egress_server.pid) and time.monotonic() < deadline:
        time.sleep(0.2)


def test_start_list_watch_update_layout_stop(cli, egress_server, publishers, room_name):
    publishers(room_name, 2)
    started = cli("egress", "start", "room-composite", "--room", room_name, "--layout", "grid",
                  "--filepath", f"cli/{room_name}.mp4").stdout
    egress_id = re.search(r"^egress\s+(EG_\w+)$", started, re.M).group(1)
    assert re.search(r"^type\s+room_composite$", started, re.M) and re.search(rf"^room\s+{room_name}$", started, re.M)
    cli.wait_status(egress_id, "EGRESS_ACTIVE")

    listed = cli("egress", "list", "--room", room_name, "--active").stdout
    row = next(line for line in listed.splitlines() if egress_id in line)
    assert "room_composite" in row and room_name in row and "EGRESS_ACTIVE" in row

    with Terminal(PYEGRESS + ["egress", "watch"], cli.env) as term:
        screen = term.read_until(lambda t: re.search(rf"{egress_id}.*EGRESS_ACTIVE.*\d:\d\d:\d\d.*[kM]B", t), 30)
        row = next(line for line in screen.splitlines() if egress_id in line)
        assert "room_composite" in row and room_name in row
        term.interrupt()
        assert term.wait(10) == 0

    updated = cli("egress", "update-layout", egress_id, "speaker").stdout
    assert re.search(rf"^egress\s+{egress_id}$", updated, re.M)
    time.sleep(2.5)
    assert "layout speaker" in (egress_server.workdir / "logs" / f"{egress_id}.log").read_text()

    stopped = cli("egress", "stop", egress_id, "--wait").stdout
    assert re.search(r"^status\s+EGRESS_COMPLETE$", stopped, re.M)
    path = egress_server.recordings_dir / "cli" / f"{room_name}.mp4"
    assert re.search(rf"^file\s+{re.escape(str(path))}\s", stopped, re.M)
    probe = ffprobe(path)
    assert probe.stream("video")["codec_name"] == "h264" and probe.duration > 3
    info = cli.info(egress_id)
    assert info["status"] == "EGRESS_COMPLETE" and info["roomComposite"]["layout"] == "speaker"
    result = info["fileResults"][0]
    assert int(result["size"]) == path.stat().st_size and abs(int(result["duration"]) / 1e9 - probe.duration) < 0.5


def test_record_until_ctrl_c(cli, egress_server, publishers, room_name):
    publishers(room_name, 1)
    with Terminal(PYEGRESS + ["record", room_name, "--layout", "speaker", "--filepath", f"rec/{room_name}"],
                  cli.env) as term:
        term.read_until(lambda t: re.search(r"EGRESS_ACTIVE\s+0:00:0[3-9]", t), 40)
        term.interrupt()
        assert term.wait(40) == 0
        out = term.text
    path = egress_server.recordings_dir / "rec" / f"{room_name}.mp4"  # no extension given: MP4 for video
    assert re.search(r"^status\s+EGRESS_COMPLETE", out, re.M)
    shown = re.search(rf"^file\s+{re.escape(str(path))}\s+([\d.]+) s\s+([\d.]+ [kM]B)", out, re.M)
    assert shown, out
    probe = ffprobe(path)
    assert probe.duration > 2.5 and abs(float(shown.group(1)) - probe.duration) < 0.5
    assert probe.stream("audio")["codec_name"] == "aac"


def test_track_egress_from_a_request_file_and_stop(cli, egress_server, livekit, publishers, room_name, tmp_path):
    """``--request FILE.json`` in LiveKit's protobuf JSON, as `lk egress start --type track` reads it."""
    publishers(room_name, 1)

    async def audio_track_sid() -> str:
        async with api.LiveKitAPI(livekit.http_url, livekit.api_key, livekit.api_secret) as lk:
            for _ in range(50):
                for p in (await lk.room.list_participants(api.ListParticipantsRequest(room=room_name))).participants:
                    for t in p.tracks:
                        if t.type == api.TrackType.AUDIO:
                            return t.sid
                await asyncio.sleep(0.2)
        raise AssertionError("the publisher's audio track never appeared")

    request = tmp_path / "track.json"
    request.write_text(json.dumps({"roomName": room_name, "trackId": asyncio.run(audio_track_sid()),
                                   "file": {"filepath": f"cli-track/{room_name}"}}))
    info = json.loads(cli("egress", "start", "track", "--request", str(request), "--json").stdout)
    assert info["track"]["roomName"] == room_name and info["egressId"].startswith("EG_")
    cli.wait_status(info["egressId"], "EGRESS_ACTIVE")
    time.sleep(2)
    final = json.loads(cli("egress", "stop", info["egressId"], "--wait", "--json").stdout)
    assert final["status"] == "EGRESS_COMPLETE"
    path = egress_server.recordings_dir / final["fileResults"][0]["filename"]
    assert ffprobe(path).stream("audio")["codec_name"] == "opus" and ffprobe(path).duration > 1.5


def test_start_egress_request_file(cli, egress_server, publishers, room_name, tmp_path):
    """`pyegress egress start --request FILE.json` without a type: LiveKit's StartEgressRequest (StartEgress)."""
    publishers(room_name, 1)
    request = tmp_path / "start.json"
    request.write_text(json.dumps({"room_name": room_name, "template": {"layout": "speaker", "audioOnly": True},
                                   "outputs": [{"file": {"filepath": f"unified/{room_name}"}}]}))
    started = cli("egress", "start", "--request", str(request)).stdout
    egress_id = re.search(r"^egress\s+(EG_\w+)$", started, re.M).group(1)
    assert re.search(r"^type\s+egress:template$", started, re.M)
    cli.wait_status(egress_id, "EGRESS_ACTIVE")
    time.sleep(2)
    stopped = cli("egress", "stop", egress_id, "--wait").stdout
    path = egress_server.recordings_dir / "unified" / f"{room_name}.ogg"  # audio only: OGG
    assert re.search(rf"^file\s+{re.escape(str(path))}\s", stopped, re.M), stopped
    probe = ffprobe(path)
    assert probe.stream("audio")["codec_name"] == "opus" and probe.stream("video") is None and probe.duration > 1.5


def test_participant_stream_and_update_stream(cli, publishers, room_name, tmp_path):
    """A participant egress streaming to RTMP (--stream-url), a second URL added and the first removed live."""
    from support.rtmp_server import RtmpServer

    publishers(room_name, 1)
    first, second = f"{room_name}-a", f"{room_name}-b"
    with RtmpServer(tmp_path / "rtmp") as rtmp:
        info = json.loads(cli("egress", "start", "participant", "--room", room_name, "--identity", "pub-0",
                              "--stream-url", rtmp.url(first), "--json").stdout)
        egress_id = info["egressId"]
        assert info["participant"]["identity"] == "pub-0"
        cli.wait_status(egress_id, "EGRESS_ACTIVE")
        time.sleep(3)
        updated = cli("egress", "update-stream", egress_id, "--add-url", rtmp.url(second)).stdout
        assert len(re.findall(r"^stream\s+rtmp://", updated, re.M)) == 2
        assert first not in updated and second not in updated  # stream keys are redacted by the server
        time.sleep(3)
        cli("egress", "update-stream", egress_id, "--remove-url", rtmp.url(first))
        time.sleep(2)
        final = json.loads(cli("egress", "stop", egress_id, "--wait", "--json").stdout)
        assert final["status"] == "EGRESS_COMPLETE"
        assert sorted(r["status"] for r in final["streamResults"]) == ["FINISHED", "FINISHED"]
        # the first URL (started first) was removed about 2 s before the stop ended the second
        removed, kept = sorted(final["streamResults"], key=lambda r: int(r["startedAt"]))
        assert int(kept["endedAt"]) - int(removed["endedAt"]) > 1.5e9, final["streamResults"]
        time.sleep(1)  # nginx closes its recordings when the publisher disconnects
        (a,), (b,) = rtmp.recordings(first), rtmp.recordings(second)
        assert ffprobe(a).duration > 4 and ffprobe(b).duration > 3
        assert ffprobe(b).stream("video")["codec_name"] == "h264"


def test_server_errors_print_the_twirp_code(cli, egress_server, livekit):
    bad = Cli(env_for(egress_server.url, livekit) | {"LIVEKIT_API_SECRET": "not-the-secret"})
    result = bad("egress", "list", status=1)
    assert result.stderr.startswith("pyegress: unauthenticated (HTTP 401)") and "Traceback" not in result.output
    assert "not-the-secret" not in result.output

    result = cli("egress", "stop", "EG_doesnotexist", status=1)
    assert "pyegress: EG_doesnotexist: not_found (HTTP 404)" in result.stderr
    result = cli("egress", "update-layout", "EG_doesnotexist", "grid", status=1)
    assert result.stderr.startswith("pyegress: not_found (HTTP 404)")


# ---- livekit-server's own Egress API, with a pyegress worker over Redis/psrpc -------------------------------

@pytest.fixture(scope="module")
def lk_with_worker(tmp_path_factory):
    """livekit-server with Redis, and one pyegress worker taking its egress jobs."""
    work = tmp_path_factory.mktemp("cli-bus")
    with RedisServer() as redis, LiveKitServer(log_path=work / "livekit-server.log",
                                               redis_host=redis.address) as lk:
        worker = PyegressWorker(work / "worker", lk.url, lk.api_key, lk.api_secret, redis.address,
                                extra_env={"PYEGRESS_EMPTY_TIMEOUT_S": "3", "PYEGRESS_PROGRESS_INTERVAL_S": "1"})
        with worker:
            yield lk, worker


def test_record_through_livekit_server(lk_with_worker, room_name, tmp_path):
    lk, worker = lk_with_worker
    env = env_for(lk.url, lk)  # ws://, as LIVEKIT_URL usually is
    with publisher_factory(lk, tmp_path) as start_publishers:
        start_publishers(room_name, 1)
        with Terminal(PYEGRESS + ["record", room_name, "--filepath", f"bus/{room_name}.mp4"], env) as term:
            screen = term.read_until(lambda t: re.search(r"EGRESS_ACTIVE\s+0:00:0[3-9]", t), 60)
            egress_id = re.search(r"recording room \S+ as (EG_\w+)", screen).group(1)
            listed = Cli(env)("egress", "list", "--active").stdout
            assert re.search(rf"{egress_id}.*room_composite.*{room_name}.*EGRESS_ACTIVE", listed)
            term.interrupt()
            assert term.wait(60) == 0
            out = term.text
    path = worker.recordings_dir / "bus" / f"{room_name}.mp4"
    assert re.search(r"^status\s+EGRESS_COMPLETE", out, re.M) and re.search(r"^file\s+\S*bus/", out, re.M)
    assert ffprobe(path).duration > 2.5
    info = Cli(env).info(egress_id)  # livekit-server's own record of it
    assert info["status"] == "EGRESS_COMPLETE" and int(info["fileResults"][0]["size"]) == path.stat().st_size
