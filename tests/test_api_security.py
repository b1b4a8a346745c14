"""The API's edges (issue 12, items 3-6), against a real ``pyegress serve`` and livekit-server: one auth rule
on Twirp and every REST dialect (``roomRecord`` as JSON ``true``; a token naming a room acts on that room
only), download links under ``PYEGRESS_PUBLIC_URL`` whatever the ``Host``, and a request body cap
answered 413 in each dialect's shape before the body is read."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from urllib.parse import urlsplit

import h11
import httpx
import jwt
import pytest
from livekit import api

from conftest import EMPTY_TIMEOUT_S
from test_rest_dialects_e2e import poll
from pyegress.config import Settings
from pyegress.devtools.pyegress_server import PyegressServer

TWIRP = "/twirp/livekit.Egress/"
ACCOUNT, APP = "acct-security", "app-security"
PUBLIC_URL = "https://recordings.example.test/pyegress"
LIMIT = 65536


def kit(path: str) -> str:
    """A RealtimeKit route of the test account and app."""
    return f"/client/v4/accounts/{ACCOUNT}/realtime/kit/{APP}{path}"


def bearer(livekit, identity: str = "", **grants) -> dict[str, str]:
    """An Authorization header with a token from livekit-api's AccessToken; ``grants`` default to roomRecord."""
    token = api.AccessToken(livekit.api_key, livekit.api_secret)
    if identity:
        token = token.with_identity(identity)
    token = token.with_grants(api.VideoGrants(**(grants or {"room_record": True})))
    return {"Authorization": f"Bearer {token.to_jwt()}"}


def raw_bearer(livekit, video: dict, identity: str = "raw-user") -> dict[str, str]:
    """An Authorization header with a correctly signed token whose ``video`` claim is exactly ``video``."""
    now = int(time.time())
    claims = {"iss": livekit.api_key, "sub": identity, "nbf": now - 10, "exp": now + 600, "video": video}
    return {"Authorization": f"Bearer {jwt.encode(claims, livekit.api_secret, algorithm='HS256')}"}


def calls(room: str) -> list[tuple[str, str, str, dict | None]]:
    """``(dialect, method, path, json)``: a read and a start of ``room`` in every dialect."""
    return [
        ("twirp", "POST", TWIRP + "ListEgress", {"room_name": room}),
        ("twirp", "POST", TWIRP + "StartRoomCompositeEgress", {"room_name": room, "file_outputs": [{}]}),
        ("rtcstack", "GET", f"/v1/rooms/{room}/recording", None),
        ("rtcstack", "POST", f"/v1/rooms/{room}/recording/start", None),
        ("recordings", "GET", f"/api/video/recordings?roomName={room}", None),
        ("recordings", "POST", "/api/video/recordings", {"roomName": room}),
        ("realtimekit", "GET", kit(f"/recordings?meeting_id={room}"), None),
        ("realtimekit", "POST", kit("/recordings"), {"meeting_id": room}),
        ("realtimekit", "GET", kit(f"/recordings/active-recording/{room}"), None),
    ]


def reads(room: str) -> list[tuple[str, str, str, dict | None]]:
    """The calls of :func:`calls` that answer 200 for a room with nothing recorded."""
    return [c for c in calls(room) if c[2].endswith("ListEgress") or (c[1] == "GET" and "active-recording" not in c[2])]


#: The field each dialect names when a room-limited token reaches for another room.
ROOM_FIELD = {"twirp": "room_name", "rtcstack": "roomId", "recordings": "roomName", "realtimekit": "meeting_id"}


def error_of(dialect: str, resp: httpx.Response) -> tuple[str, str]:
    """``(message, field)`` of an error reply, checking the dialect's shape."""
    body = resp.json()
    if dialect == "twirp":
        assert set(body) == {"code", "msg", "meta"}, body
        return body["msg"], body["meta"].get("argument", "")
    if dialect == "realtimekit":
        assert body["success"] is False and body["error"]["code"] == resp.status_code, body
        return body["error"]["message"], body["error"].get("field", "")
    assert set(body) <= {"error", "field"} and isinstance(body["error"], str), body
    return body["error"], body.get("field", "")


def assert_denied(dialect: str, resp: httpx.Response, *, field: str = "", fragment: str = "") -> None:
    assert resp.status_code == 403, (dialect, resp.request.url, resp.text)
    message, named = error_of(dialect, resp)
    if dialect == "twirp":
        assert resp.json()["code"] == "permission_denied"
    assert fragment in message and named == field, (dialect, resp.text)


def send(client: httpx.Client, method: str, path: str, body: dict | None, headers: dict) -> httpx.Response:
    return client.request(method, path, json=body, headers=headers)


# ---- item 3: one rule for every dialect --------------------------------------------------------------------

def test_a_participant_token_reaches_no_dialect(egress_server, livekit):
    """A token that only joins some other room (what any participant holds) is refused everywhere."""
    participant = bearer(livekit, "eve", room_join=True, room="eves-room", can_publish=True)
    with httpx.Client(base_url=egress_server.url, timeout=30) as client:
        for dialect, method, path, body in calls("someone-elses-room"):
            assert_denied(dialect, send(client, method, path, body, participant), fragment="roomRecord")


@pytest.mark.parametrize("video", [{"roomRecord": "false"}, {"roomRecord": "true"}, {"roomRecord": 1},
                                   {"roomRecord": False}, {"roomJoin": True}, {}])
def test_room_record_must_be_json_true(egress_server, livekit, video):
    """Item 6: only JSON ``true`` grants roomRecord; a string, a number or its absence do not."""
    headers = raw_bearer(livekit, video)
    with httpx.Client(base_url=egress_server.url, timeout=30) as client:
        for dialect, method, path, body in calls("any-room"):
            assert_denied(dialect, send(client, method, path, body, headers), fragment="roomRecord")


def test_room_record_true_in_a_raw_token_is_granted(egress_server, livekit):
    headers = raw_bearer(livekit, {"roomRecord": True})
    with httpx.Client(base_url=egress_server.url, timeout=30) as client:
        for dialect, method, path, body in reads("any-room"):
            assert send(client, method, path, body, headers).status_code == 200, (dialect, path)


async def test_a_room_limited_token_acts_on_its_room_only(egress_server, livekit, lkapi):
    mine, theirs = f"mine-{uuid.uuid4().hex[:6]}", f"theirs-{uuid.uuid4().hex[:6]}"
    limited = bearer(livekit, "ann", room_record=True, room=mine)
    full = bearer(livekit, "ann")
    await lkapi.room.create_room(api.CreateRoomRequest(name=theirs))
    async with httpx.AsyncClient(base_url=egress_server.url, timeout=30) as client:
        for dialect, method, path, body in calls(theirs):
            resp = await client.request(method, path, json=body, headers=limited)
            assert_denied(dialect, resp, field=ROOM_FIELD[dialect], fragment=mine)
        # its own room passes the check (reads answer; there is nothing recorded)
        for dialect, method, path, body in reads(mine):
            assert (await client.request(method, path, json=body, headers=limited)).status_code == 200, path

        # an egress of another room: not listed, not stopped, not changed with the limited token
        started = await client.post(TWIRP + "StartRoomCompositeEgress", headers=full, json={
            "room_name": theirs, "file_outputs": [{"filepath": "limited/{time}.mp4"}]})
        assert started.status_code == 200, started.text
        egress_id = started.json()["egress_id"]
        try:
            listed = (await client.post(TWIRP + "ListEgress", json={}, headers=limited)).json()
            assert all(item["room_name"] == mine for item in listed.get("items", []))
            by_id = (await client.post(TWIRP + "ListEgress", json={"egress_id": egress_id}, headers=limited)).json()
            assert by_id.get("items", []) == []
            for method, body in (("StopEgress", {"egress_id": egress_id}),
                                 ("UpdateLayout", {"egress_id": egress_id, "layout": "speaker"}),
                                 ("UpdateStream", {"egress_id": egress_id, "add_output_urls": ["rtmp://h/a"]})):
                resp = await client.post(TWIRP + method, json=body, headers=limited)
                assert_denied("twirp", resp, field="egress_id", fragment=mine)
            assert (await client.post(TWIRP + "ListEgress", json={"egress_id": egress_id}, headers=full)).json()[
                "items"][0]["status"] in ("EGRESS_STARTING", "EGRESS_ACTIVE")
        finally:
            await client.post(TWIRP + "StopEgress", json={"egress_id": egress_id}, headers=full)


# ---- item 4: download links under the configured public URL ------------------------------------------------

def test_public_url_defaults_to_the_listen_address():
    assert Settings(host="0.0.0.0", port=9000).public_base_url == "http://0.0.0.0:9000"
    assert Settings(host="::1", port=9000).public_base_url == "http://[::1]:9000"
    assert Settings(public_url="https://rec.example.test/base/").public_base_url == "https://rec.example.test/base"


@pytest.fixture(scope="module")
def edge_server(livekit, tmp_path_factory):
    """``pyegress serve`` with a public URL and a small body limit."""
    with PyegressServer(tmp_path_factory.mktemp("edge"), livekit.url, livekit.api_key, livekit.api_secret,
                        extra_env={"PYEGRESS_EMPTY_TIMEOUT_S": str(EMPTY_TIMEOUT_S),
                                   "PYEGRESS_PROGRESS_INTERVAL_S": "1", "PYEGRESS_PUBLIC_URL": PUBLIC_URL,
                                   "PYEGRESS_MAX_BODY_BYTES": str(LIMIT)}) as server:
        yield server


async def test_download_urls_ignore_the_host_header(edge_server, livekit, lkapi, publishers, room_name):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1)
    hostile = {**bearer(livekit, "hal"), "Host": "attacker.example"}
    async with httpx.AsyncClient(base_url=edge_server.url, headers=hostile, timeout=60) as http:
        rec = (await http.post("/api/video/recordings", json={"roomName": room_name, "resolution": "480p"})).json()
        kit_rec = (await http.post(kit("/recordings"), json={"meeting_id": room_name})).json()["data"]
        await poll(lambda: http.get(f"/api/video/recordings/{rec['recordingId']}"),
                   lambda r: r.json()["recording"]["status"] == "active", timeout_s=60)
        await poll(lambda: http.get(kit(f"/recordings/{kit_rec['id']}")),
                   lambda r: r.json()["data"]["status"] == "RECORDING", timeout_s=60)
        await asyncio.sleep(2)
        assert (await http.patch(f"/api/video/recordings/{rec['recordingId']}")).json()["status"] == "completed"
        await http.put(kit(f"/recordings/{kit_rec['id']}"), json={"action": "stop"})
        got = (await http.get(f"/api/video/recordings/{rec['recordingId']}")).json()
        kit_done = await poll(lambda: http.get(kit(f"/recordings/{kit_rec['id']}")),
                              lambda r: r.json()["data"]["status"] == "UPLOADED", timeout_s=60)
    links = [got["downloadUrl"], kit_done.json()["data"]["download_url"]]
    for link in links:
        assert link.startswith(PUBLIC_URL + "/downloads/") and "attacker" not in link, link
        # the same path and signature, on the server itself, serve the file
        parts = urlsplit(link)
        local = edge_server.url + parts.path.removeprefix(urlsplit(PUBLIC_URL).path) + "?" + parts.query
        assert httpx.get(local, timeout=10).status_code == 200


# ---- item 5: the body limit ---------------------------------------------------------------------------------

def raw_request(url: str, method: str, path: str, headers: list[tuple[str, str]], body: bytes = b"",
                end: bool = True) -> tuple[int, bytes]:
    """Send a request over a plain socket (so a body can be announced and never sent, or sent without
    its end) and read the response; returns ``(status, body)``."""
    parts = urlsplit(url)
    conn = h11.Connection(h11.CLIENT)
    with socket.create_connection((parts.hostname, parts.port), timeout=15) as sock:
        sock.sendall(conn.send(h11.Request(method=method, target=path,
                                           headers=[("Host", parts.netloc), *headers])))
        if body:
            sock.sendall(conn.send(h11.Data(data=body)))
        if end:
            sock.sendall(conn.send(h11.EndOfMessage()))
        status, data = 0, b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                data += event.data
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                return status, data


#: One route per dialect that reads a body, with its auth.
BODY_ROUTES = [("twirp", TWIRP + "StartRoomCompositeEgress"), ("recordings", "/api/video/recordings"),
               ("realtimekit", kit("/recordings"))]


def assert_too_large(dialect: str, status: int, data: bytes) -> None:
    assert status == 413, data
    body = json.loads(data)
    if dialect == "twirp":
        assert body["code"] == "resource_exhausted" and str(LIMIT) in body["msg"], body
    elif dialect == "realtimekit":
        assert body["success"] is False and body["error"]["code"] == 413, body
    else:
        assert str(LIMIT) in body["error"], body


def test_announced_oversized_body_is_refused_unread(edge_server, livekit):
    auth = ("Authorization", bearer(livekit, "olga")["Authorization"])
    for dialect, path in [*BODY_ROUTES, ("rtcstack", "/v1/rooms/r/recording/start")]:
        # a gigabyte announced, none sent: only an answer before reading can come back
        status, data = raw_request(edge_server.url, "POST", path, [auth, ("Content-Type", "application/json"),
                                                                    ("Content-Length", str(10**9))], end=False)
        assert_too_large(dialect, status, data)


def test_streamed_oversized_body_is_refused(edge_server, livekit):
    auth = ("Authorization", bearer(livekit, "olga")["Authorization"])
    for dialect, path in BODY_ROUTES:
        status, data = raw_request(edge_server.url, "POST", path, [auth, ("Content-Type", "application/json"),
                                                                    ("Transfer-Encoding", "chunked")],
                                   body=b" " * (LIMIT + 1), end=False)
        assert_too_large(dialect, status, data)


def test_bodies_within_the_limit_pass(edge_server, livekit):
    padded = b'{"room_name": "x", "padding_ignored": "' + b"p" * (LIMIT - 100) + b'"}'
    resp = httpx.post(edge_server.url + TWIRP + "ListEgress", content=padded, timeout=10,
                      headers={**bearer(livekit), "Content-Type": "application/json"})
    assert resp.status_code == 200, resp.text


def test_default_limit_is_4_mib(egress_server, livekit):
    auth = ("Authorization", bearer(livekit)["Authorization"])
    status, data = raw_request(egress_server.url, "POST", TWIRP + "ListEgress",
                               [auth, ("Content-Type", "application/json"), ("Content-Length", str(4 * 2**20 + 1))],
                               end=False)
    assert status == 413 and b"4194304" in data
