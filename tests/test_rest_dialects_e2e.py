"""The REST dialects end to end against a real livekit-server and ``pyegress serve``: RTCstack's recording
API and the Next.js recordings skill's API (docs/wire.md), on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
from livekit import api

from conftest import EMPTY_TIMEOUT_S, wait_status
from pyegress.api.rest.downloads import signed_url
from pyegress.devtools.probe import ffprobe
from pyegress.devtools.pyegress_server import PyegressServer
from test_webhooks_e2e import Receiver

SEED_003_KEYS = {"id", "roomName", "roomSid", "egressId", "status", "layout", "codec", "resolution", "startedAt",
                 "stoppedAt", "fileUrl", "storageKey", "fileSize", "duration", "userId", "createdAt", "updatedAt"}


@pytest.fixture(scope="module")
def hooks():
    r = Receiver()
    yield r
    r.close()


def start_server(workdir: Path, livekit, **env: str) -> PyegressServer:
    return PyegressServer(workdir, livekit.url, livekit.api_key, livekit.api_secret,
                          extra_env={"PYEGRESS_EMPTY_TIMEOUT_S": str(EMPTY_TIMEOUT_S),
                                     "PYEGRESS_PROGRESS_INTERVAL_S": "1", **env}).start()


@pytest.fixture(scope="module")
def server(livekit, hooks, tmp_path_factory):
    s = start_server(tmp_path_factory.mktemp("rest"), livekit, PYEGRESS_RTCSTACK_WEBHOOK_URLS=hooks.url)
    yield s
    s.stop()


def bearer(livekit, identity: str = "", secret: str | None = None, **grants) -> dict[str, str]:
    """An Authorization header; ``grants`` default to roomRecord, which every dialect requires."""
    token = api.AccessToken(livekit.api_key, secret or livekit.api_secret)
    if identity:
        token = token.with_identity(identity)
    token = token.with_grants(api.VideoGrants(**(grants or {"room_record": True})))
    return {"Authorization": f"Bearer {token.to_jwt()}"}


async def room_with_publishers(lkapi, publishers, room_name: str, count: int = 2) -> None:
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, count)


async def poll(fetch, done, timeout_s: float = 30.0):
    """Call ``await fetch()`` until ``done(result)``; returns the result."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await fetch()
        if done(result) or time.monotonic() > deadline:
            assert done(result), f"gave up waiting; last result: {result}"
            return result
        await asyncio.sleep(0.1)


# ---- RTCstack -----------------------------------------------------------------------------------------

async def test_rtcstack_records_a_room(server, livekit, lkapi, publishers, room_name, hooks):
    await room_with_publishers(lkapi, publishers, room_name)
    auth = bearer(livekit, room_record=True)
    base = f"{server.url}/v1/rooms/{room_name}/recording"
    async with httpx.AsyncClient(headers=auth, timeout=30) as http:
        assert (await http.get(base)).json() == {"active": False}
        started = await http.post(base + "/start")
        assert started.status_code == 200
        body = started.json()
        assert set(body) == {"egressId", "status", "startedAt"} and body["status"] == "starting"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["startedAt"])
        again = (await http.post(base + "/start")).json()  # idempotent: the same recording
        assert again["egressId"] == body["egressId"]
        status = (await http.get(base)).json()
        assert status["active"] and status["egressId"] == body["egressId"] and set(status) == {
            "active", "egressId", "startedAt"}
        async with api.LiveKitAPI(server.url, livekit.api_key, livekit.api_secret) as twirp:
            await wait_status(twirp, body["egressId"], lambda i: i.status == api.EgressStatus.EGRESS_ACTIVE)
        await asyncio.sleep(3)
        stopped = await http.post(base + "/stop")
        assert stopped.json() == {"egressId": body["egressId"], "status": "stopping"}

        await poll(lambda: asyncio.sleep(0, hooks.requests), lambda reqs: any(
            json.loads(b).get("egressId") == body["egressId"] for b, _, _ in reqs))
        (hook, _, content_type), = [r for r in hooks.requests if json.loads(r[0]).get("egressId") == body["egressId"]]
        payload = json.loads(hook)
        assert content_type == "application/json"
        assert set(payload) == {"event", "egressId", "roomId", "file", "duration", "size"}
        assert payload["event"] == "egress_ended" and payload["roomId"] == room_name
        assert re.fullmatch(rf"{room_name}/\d{{4}}-\d\d-\d\dT\d\d-\d\d-\d\d\.mp4", payload["file"])
        path = server.recordings_dir / payload["file"]
        assert payload["size"] == path.stat().st_size
        assert not path.with_name(path.name + ".json").exists()  # only the MP4 under the room's key
        probe = ffprobe(path)
        video = probe.stream("video")
        assert (video["codec_name"], video["width"], video["height"]) == ("h264", 1280, 720)
        assert abs(probe.video_fps - 30) < 0.5 and probe.stream("audio")["codec_name"] == "aac"
        assert abs(payload["duration"] - probe.duration) < 0.5 and 2.5 < payload["duration"] < 6

        assert (await http.get(base)).json() == {"active": False}
        missing = await http.post(base + "/stop")
        assert missing.status_code == 404 and room_name in missing.json()["error"]


async def test_rtcstack_refuses_bad_calls(server, livekit):
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        assert (await http.post("/v1/rooms/r1/recording/start")).status_code == 401
        no_grant = await http.post("/v1/rooms/r1/recording/start", headers=bearer(livekit, "someone", room_join=True, room="r1"))
        assert no_grant.status_code == 403 and "roomRecord" in no_grant.json()["error"]
        auth = bearer(livekit, room_record=True)
        absent = await http.post("/v1/rooms/no-such-room/recording/start", headers=auth)
        assert absent.status_code == 404 and absent.json()["field"] == "roomId"
        for bad in ("%2E%2E", "a%5Cb"):
            reply = await http.post(f"/v1/rooms/{bad}/recording/start", headers=auth)
            assert reply.status_code == 400 and reply.json()["field"] == "roomId", reply.text


# ---- recordings API ---------------------------------------------------------------------------------

async def record(http: httpx.AsyncClient, body: dict, seconds: float) -> tuple[str, dict]:
    """POST a recording, let it run ``seconds`` once active, PATCH it; returns (id, PATCH reply)."""
    created = await http.post("/api/video/recordings", json=body)
    assert created.status_code == 201, created.text
    rec = created.json()
    assert set(rec) == {"recordingId", "egressId", "status"} and rec["status"] in ("starting", "active")
    await poll(lambda: http.get(f"/api/video/recordings/{rec['recordingId']}"),
               lambda r: r.json()["recording"]["status"] == "active")
    await asyncio.sleep(seconds)
    stopped = await http.patch(f"/api/video/recordings/{rec['recordingId']}")
    assert stopped.status_code == 200, stopped.text
    return rec["recordingId"], stopped.json()


async def test_recordings_api_records_downloads_and_deletes(server, livekit, lkapi, publishers, room_name):
    await room_with_publishers(lkapi, publishers, room_name)
    async with httpx.AsyncClient(base_url=server.url, headers=bearer(livekit, "alice"), timeout=60) as alice, \
            httpx.AsyncClient(base_url=server.url, headers=bearer(livekit, "bob"), timeout=10) as bob:
        rec_id, stopped = await record(alice, {"roomName": room_name, "resolution": "720p", "layout": "grid"}, 3)
        assert stopped["status"] == "completed" and 2.5 < stopped["duration"] < 6 and stopped["fileUrl"]

        got = (await alice.get(f"/api/video/recordings/{rec_id}")).json()
        rec = got["recording"]
        assert set(rec) == SEED_003_KEYS
        assert (rec["userId"], rec["roomName"], rec["status"], rec["resolution"]) == ("alice", room_name,
                                                                                      "completed", "720p")
        assert rec["roomSid"].startswith("RM_") and rec["stoppedAt"] and rec["storageKey"].startswith(
            f"recordings/{room_name}/")
        path = server.recordings_dir / rec["storageKey"]
        assert rec["fileSize"] == path.stat().st_size

        # the download URL serves the file to anyone holding it, for an hour
        download = httpx.get(got["downloadUrl"])
        assert download.status_code == 200 and download.content == path.read_bytes()
        assert download.headers["content-type"] == "video/mp4"
        fetched = Path(server.workdir / "downloaded.mp4")
        fetched.write_bytes(download.content)
        probe = ffprobe(fetched)
        assert (probe.stream("video")["width"], probe.stream("video")["height"]) == (1280, 720)
        assert abs(probe.duration - rec["duration"]) < 0.5

        # ...and not once tampered with or expired
        url = urlsplit(got["downloadUrl"])
        query = dict(parse_qsl(url.query))
        later = urlencode({**query, "expires": str(int(query["expires"]) + 3600)})
        assert httpx.get(url._replace(query=later).geturl()).status_code == 403
        other_key = url._replace(path=url.path.replace(".mp4", "-1.mp4")).geturl()
        assert httpx.get(other_key).status_code == 403
        expired = signed_url(server.url, livekit.api_secret, rec["storageKey"], 3600, now=time.time() - 3601)
        assert httpx.get(expired).status_code == 403
        assert livekit.api_secret not in got["downloadUrl"]

        # per-user isolation: bob sees none of it
        assert (await bob.get(f"/api/video/recordings/{rec_id}")).status_code == 404
        assert (await bob.patch(f"/api/video/recordings/{rec_id}")).status_code == 404
        assert (await bob.delete(f"/api/video/recordings/{rec_id}")).status_code == 404
        assert (await bob.get("/api/video/recordings")).json() == {"recordings": []}
        listed = (await alice.get("/api/video/recordings", params={"roomName": room_name, "limit": "5"})).json()
        assert [r["id"] for r in listed["recordings"]] == [rec_id]

        # stopping twice is refused, deleting removes the row and the file
        again = await alice.patch(f"/api/video/recordings/{rec_id}")
        assert again.status_code == 409 and "completed" in again.json()["error"]
        assert (await alice.delete(f"/api/video/recordings/{rec_id}")).json() == {"success": True}
        assert not path.exists()
        assert (await alice.get(f"/api/video/recordings/{rec_id}")).status_code == 404
        assert httpx.get(got["downloadUrl"]).status_code == 404


async def test_recordings_api_vp8_480p_and_track_based(server, livekit, lkapi, publishers, room_name):
    await room_with_publishers(lkapi, publishers, room_name)
    async with httpx.AsyncClient(base_url=server.url, headers=bearer(livekit, "carol"), timeout=60) as http:
        rec_id, stopped = await record(http, {"roomName": room_name, "resolution": "480p", "codec": "vp8",
                                              "layout": "speaker"}, 2)
        assert stopped["status"] == "completed"
        rec = (await http.get(f"/api/video/recordings/{rec_id}")).json()["recording"]
        assert rec["storageKey"].endswith(".webm") and (rec["codec"], rec["layout"]) == ("vp8", "speaker")
        video = ffprobe(server.recordings_dir / rec["storageKey"]).stream("video")
        assert (video["codec_name"], video["width"], video["height"]) == ("vp8", 854, 480)

        participants = (await lkapi.room.list_participants(api.ListParticipantsRequest(room=room_name))).participants
        track_sid = next(t.sid for p in participants for t in p.tracks if t.type == api.TrackType.VIDEO)
        rec_id, stopped = await record(http, {"roomName": room_name, "trackBased": True, "trackSid": track_sid}, 2)
        assert stopped["status"] == "completed"
        rec = (await http.get(f"/api/video/recordings/{rec_id}")).json()["recording"]
        assert rec["layout"] == "single-speaker"
        probe = ffprobe(server.recordings_dir / rec["storageKey"])
        assert probe.stream("video") and probe.stream("audio") is None and 1.5 < probe.duration < 5


async def test_recordings_api_rejects_bad_input(server, livekit, lkapi, room_name):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    async with httpx.AsyncClient(base_url=server.url, headers=bearer(livekit, "dave"), timeout=10) as http:
        cases = [({}, "roomName"), ({"roomName": ""}, "roomName"), ({"roomName": "../x"}, "roomName"),
                 ({"roomName": room_name, "layout": "diagonal"}, "layout"),
                 ({"roomName": room_name, "resolution": "4k"}, "resolution"),
                 ({"roomName": room_name, "codec": "h265"}, "codec"),
                 ({"roomName": room_name, "videoBitrate": "high"}, "videoBitrate"),
                 ({"roomName": room_name, "audioBitrate": -1}, "audioBitrate"),
                 ({"roomName": room_name, "trackBased": True}, "trackSid"),
                 ({"roomName": room_name, "trackBased": True, "trackSid": "TR_nope"}, "trackSid")]
        for body, field in cases:
            reply = await http.post("/api/video/recordings", json=body)
            assert reply.status_code in (400, 404, 422) and reply.json()["field"] == field, (body, reply.text)
            assert field in reply.json()["error"]
        assert (await http.post("/api/video/recordings", json={"roomName": "no-such-room"})).json()["field"] == \
            "roomName"
        garbage = await http.post("/api/video/recordings", content=b"{not json", headers={"Content-Type":
                                                                                         "application/json"})
        assert garbage.status_code == 400 and garbage.json()["error"]
        for limit in ("abc", "0", "²", "-1"):
            bad_limit = await http.get("/api/video/recordings", params={"limit": limit})
            assert bad_limit.status_code == 400 and bad_limit.json()["field"] == "limit"
        for query in ({"expires": "²", "signature": "x"}, {"expires": "1", "signature": "é"}, {}):
            assert (await http.get("/downloads/a.mp4", params=query)).status_code == 403
        for rid in (str(uuid.uuid4()), "not-a-uuid"):
            assert (await http.get(f"/api/video/recordings/{rid}")).status_code == 404
        unsigned = await http.get("/api/video/recordings", headers={"Authorization": "Bearer x.y.z"})
        assert unsigned.status_code == 401 and unsigned.json()["error"] == "Unauthorized"
        forged = await http.get("/api/video/recordings", headers=bearer(livekit, "dave", secret="not-the-secret"))
        assert forged.status_code == 401
        assert (await http.get("/api/video/recordings", headers={"Authorization": ""})).status_code == 401
    paths = httpx.get(server.url + "/openapi.json").json()["paths"]
    assert {"/v1/rooms/{roomId}/recording/start", "/v1/rooms/{roomId}/recording/stop", "/v1/rooms/{roomId}/recording",
            "/api/video/recordings", "/api/video/recordings/{id}"} <= set(paths)


async def test_recordings_api_on_postgres(livekit, lkapi, publishers, room_name, postgres, tmp_path):
    url = postgres.create_database(f"rest_{uuid.uuid4().hex[:8]}")
    server = start_server(tmp_path / "pg", livekit, PYEGRESS_DATABASE_URL=url)
    try:
        await room_with_publishers(lkapi, publishers, room_name, 1)
        async with httpx.AsyncClient(base_url=server.url, headers=bearer(livekit, "erin"), timeout=60) as http:
            rec_id, stopped = await record(http, {"roomName": room_name, "resolution": "720p"}, 2)
            assert stopped["status"] == "completed" and stopped["duration"] > 1.5
            got = (await http.get(f"/api/video/recordings/{rec_id}")).json()
            assert httpx.get(got["downloadUrl"]).status_code == 200
            listed = (await http.get("/api/video/recordings")).json()["recordings"]
            assert [r["id"] for r in listed] == [rec_id] and listed[0]["startedAt"].endswith("Z")
            assert (await http.delete(f"/api/video/recordings/{rec_id}")).json() == {"success": True}
            assert (await http.get("/api/video/recordings")).json() == {"recordings": []}
    finally:
        server.stop()


async def test_a_crash_leaves_no_recording_running_forever(livekit, lkapi, publishers, room_name, tmp_path):
    server = start_server(tmp_path / "crash", livekit)
    try:
        await room_with_publishers(lkapi, publishers, room_name, 1)
        async with httpx.AsyncClient(base_url=server.url, headers=bearer(livekit, "frank"), timeout=30) as http:
            rec_id = (await http.post("/api/video/recordings", json={"roomName": room_name})).json()["recordingId"]
            await poll(lambda: http.get(f"/api/video/recordings/{rec_id}"),
                       lambda r: r.json()["recording"]["status"] == "active")
        os.kill(server.pid, signal.SIGKILL)  # no chance to record the end
        server.stop()
        server = start_server(tmp_path / "crash", livekit)  # the same database
        async with httpx.AsyncClient(base_url=server.url, headers=bearer(livekit, "frank"), timeout=30) as http:
            rec = (await http.get(f"/api/video/recordings/{rec_id}")).json()["recording"]
            assert rec["status"] == "failed" and rec["stoppedAt"]
            assert (await http.patch(f"/api/video/recordings/{rec_id}")).status_code == 409
    finally:
        server.stop()
