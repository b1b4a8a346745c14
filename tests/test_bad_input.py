"""Bad input never answers 500 (issue 12): each case gets its dialect's own 4xx naming the field, against a
real ``pyegress serve`` and livekit-server, on one keep-alive connection that must survive them all."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from livekit import api

from conftest import publisher_factory
from test_api_security import bearer, kit

TWIRP = "/twirp/livekit.Egress/"
BAD_HTTP = "http://[::1"


@pytest.fixture(scope="module")
def room(livekit, tmp_path_factory):
    """A room with one generated publisher (camera and microphone)."""
    name = f"bad-{uuid.uuid4().hex[:8]}"
    with publisher_factory(livekit, tmp_path_factory.mktemp("bad-input")) as start:
        start(name, 1)
        yield name


@pytest.fixture(scope="module")
def http(egress_server, livekit):
    """One keep-alive client for every case: a 500 would also drop the connection."""
    with httpx.Client(base_url=egress_server.url, headers=bearer(livekit, "mallory"), timeout=30) as client:
        yield client


def twirp(http: httpx.Client, method: str, body, *, ctype: str = "application/json") -> httpx.Response:
    content = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return http.post(TWIRP + method, content=content, headers={"Content-Type": ctype})


def assert_twirp_invalid(resp: httpx.Response, field: str, code: str = "invalid_argument", status: int = 400):
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"code", "msg", "meta"} and body["code"] == code, body
    assert body["msg"].startswith(f"{field}:") and body["meta"].get("argument") == field, body


def file_out(**extra) -> list[dict]:
    return [{"filepath": "bad/{time}.mp4", **extra}]


def test_twirp_bad_fields(http, room):
    cases = [
        ("StartRoomCompositeEgress", {"room_name": room, "audio_mixing": 99, "file_outputs": file_out()},
         "audio_mixing"),
        ("StartRoomCompositeEgress", {"room_name": room, "advanced": {"audio_codec": 99},
                                      "file_outputs": file_out()}, "advanced.audio_codec"),
        ("StartEgress", {"room_name": room, "template": {"layout": "grid"},
                         "outputs": [{"file": {"filepath": "x.mp4", "file_type": 77}}]}, "outputs[0].file.file_type"),
        ("StartRoomCompositeEgress", {"room_name": room, "custom_base_url": BAD_HTTP, "file_outputs": file_out()},
         "custom_base_url"),
        ("StartWebEgress", {"url": BAD_HTTP, "file_outputs": file_out()}, "url"),
        ("StartEgress", {"web": {"url": BAD_HTTP}, "outputs": [{"file": {"filepath": "w.mp4"}}]}, "web.url"),
        ("StartRoomCompositeEgress", {"room_name": room, "stream_outputs": [{"urls": ["rtmp://["]}]},
         "stream_outputs[0].urls[0]"),
        ("StartRoomCompositeEgress", {"room_name": room, "file_outputs": file_out(s3={
            "bucket": "b", "endpoint": BAD_HTTP})}, "file_outputs[0].s3.endpoint"),
        ("StartRoomCompositeEgress", {"room_name": room, "file_outputs": file_out(gcp={
            "bucket": "b", "credentials": json.dumps({"gcs_base_url": BAD_HTTP})})},
         "file_outputs[0].gcp.credentials.gcs_base_url"),
    ]
    for method, body, field in cases:
        assert_twirp_invalid(twirp(http, method, body), field)


def test_twirp_unknown_enum_in_binary_body(http, room):
    req = api.RoomCompositeEgressRequest(room_name=room, file_outputs=[api.EncodedFileOutput(filepath="b.mp4")])
    req.advanced.video_codec = 42  # proto3 enums are open: the binary decoder keeps it
    resp = twirp(http, "StartRoomCompositeEgress", req.SerializeToString(), ctype="application/protobuf")
    assert_twirp_invalid(resp, "advanced.video_codec")


async def test_twirp_websocket_and_update_stream_urls(http, room, livekit):
    async with api.LiveKitAPI(livekit.http_url, livekit.api_key, livekit.api_secret) as lk:
        participants = (await lk.room.list_participants(api.ListParticipantsRequest(room=room))).participants
    audio = next(t.sid for p in participants for t in p.tracks if t.type == api.TrackType.AUDIO)
    assert_twirp_invalid(twirp(http, "StartTrackEgress", {"room_name": room, "track_id": audio,
                                                          "websocket_url": "ws://["}), "websocket_url")

    # an egress that streams (to a closed port: it is stopped before that matters)
    started = twirp(http, "StartRoomCompositeEgress", {"room_name": room, "stream_outputs": [
        {"protocol": "RTMP", "urls": ["rtmp://127.0.0.1:1/live/key"]}]})
    assert started.status_code == 200, started.text
    egress_id = started.json()["egress_id"]
    try:
        assert_twirp_invalid(twirp(http, "UpdateStream", {"egress_id": egress_id, "add_output_urls": ["rtmp://["]}),
                             "add_output_urls[0]")
    finally:
        twirp(http, "StopEgress", {"egress_id": egress_id})


def test_twirp_unroutable_requests_are_twirp_errors(http):
    for method, path in (("POST", TWIRP), ("POST", "/twirp/livekit.Nope/Start"), ("POST", "/twirp/"),
                         ("GET", TWIRP + "ListEgress"), ("PUT", TWIRP + "StopEgress")):
        resp = http.request(method, path, content=b"{}", headers={"Content-Type": "application/json"})
        assert resp.status_code == 404, (method, path, resp.text)
        assert resp.headers["content-type"] == "application/json"
        body = resp.json()
        assert set(body) == {"code", "msg", "meta"} and body["code"] == "bad_route", body


def test_twirp_deep_and_broken_bodies(http):
    for body in (b"[" * 50_000, b'{"room_name": "\\ud800"}', b"\xff\xfe"):
        resp = twirp(http, "StartRoomCompositeEgress", body)
        assert resp.status_code == 400 and resp.json()["code"] == "malformed", resp.text
    # the parser's message quotes the lone surrogate: the reply still says where, in valid UTF-8
    resp = twirp(http, "StartWebEgress", b'{"url": "http://a", "stream": {"urls": "\\ud800"}}')
    assert resp.status_code == 400 and "WebEgressRequest.stream" in resp.json()["msg"], resp.text


def test_downloads_huge_expiry(http):
    resp = http.get("/downloads/a.mp4", params={"expires": "9" * 5000, "signature": "00"})
    assert resp.status_code == 403 and resp.json() == {
        "error": "the download URL's expires is not a Unix time", "field": "expires"}


def test_recordings_api_huge_limit(http):
    resp = http.get("/api/video/recordings", params={"limit": "1" * 5000})
    assert resp.status_code == 400 and resp.json()["field"] == "limit", resp.text


def test_recordings_api_deep_and_broken_bodies(http):
    for body in (b"[" * 50_000, b'{"roomName": "\\ud800"}', b"\xff\xfe"):
        resp = http.post("/api/video/recordings", content=body, headers={"Content-Type": "application/json"})
        assert resp.status_code == 400 and resp.json()["error"], resp.text


@pytest.mark.parametrize("query, field", [
    ({"per_page": "inf"}, "per_page"), ({"per_page": "nan"}, "per_page"), ({"page_no": "1e300"}, "page_no"),
    ({"page_no": "-inf"}, "page_no"), ({"start_time": "9999-12-31T23:59:59Z"}, "start_time"),
    ({"end_time": "0001-01-01T00:00:00+01:00"}, "end_time"), ({"start_time": "0001-01-01T00:00:00Z"}, "start_time"),
])
def test_realtimekit_paging_and_times(http, query, field):
    resp = http.get(kit("/recordings"), params=query)
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert resp.json()["success"] is False and error["code"] == 422 and error["field"] == field, error


def test_realtimekit_bodies(http, room):
    cases = [
        ({"meeting_id": room, "url": BAD_HTTP}, "url"),
        ({"meeting_id": room, "rtmp_out_config": {"rtmp_url": "rtmp://["}}, "rtmp_out_config.rtmp_url"),
        ('{"meeting_id": "%s", "file_name_prefix": "x\\ud800y"}' % room, "file_name_prefix"),
        ('{"meeting_id": "%s", "storage_config": {"type": "sftp", "host": "h", "username": "u", "password": "p", '
         '"port": Infinity}}' % room, "storage_config.port"),
    ]
    for body, field in cases:
        content = body if isinstance(body, str) else json.dumps(body)
        resp = http.post(kit("/recordings"), content=content, headers={"Content-Type": "application/json"})
        assert resp.status_code == 422, resp.text
        error = resp.json()["error"]
        assert error["code"] == 422 and error["field"] == field and error["message"].startswith(field), error
    resp = http.post(kit("/recordings/track"), content='{"meeting_id": "%s", "layers": {"\\udc00": {}}}' % room,
                     headers={"Content-Type": "application/json"})
    assert resp.status_code == 422 and resp.json()["error"]["field"] == "layers", resp.text
    deep = http.post(kit("/recordings"), content=b"[" * 50_000, headers={"Content-Type": "application/json"})
    assert deep.status_code == 400 and deep.json()["error"]["code"] == 400, deep.text


def test_still_serving(http):
    assert twirp(http, "ListEgress", {}).status_code == 200
    assert http.get(kit("/recordings")).json()["success"] is True

