"""Bad input on the Twirp Egress API: each gets the right Twirp error, nothing crashes, nothing escapes."""

from __future__ import annotations

import datetime

import httpx
import pytest
from livekit import api

URL = "/twirp/livekit.Egress/"


def token(livekit, *, room_record=True, ttl=datetime.timedelta(minutes=5), secret=None) -> str:
    t = api.AccessToken(livekit.api_key, secret or livekit.api_secret).with_ttl(ttl)
    return t.with_grants(api.VideoGrants(room_record=room_record)).to_jwt()


def post(server, method, body, *, auth=None, ctype="application/json"):
    headers = {"Content-Type": ctype}
    if auth is not None:
        headers["Authorization"] = auth
    return httpx.post(server.url + URL + method, content=body, headers=headers, timeout=10)


def assert_twirp(resp, status: int, code: str, *fragments: str):
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert body["code"] == code and isinstance(body["msg"], str)
    for f in fragments:
        assert f in body["msg"], body


@pytest.mark.parametrize("case", ["missing", "garbage", "wrong-secret", "expired", "not-bearer"])
def test_unauthenticated(egress_server, livekit, case):
    auth = {
        "missing": None,
        "garbage": "Bearer not.a.jwt",
        "wrong-secret": "Bearer " + token(livekit, secret="another-secret-entirely"),
        "expired": "Bearer " + token(livekit, ttl=datetime.timedelta(seconds=-120)),
        "not-bearer": "Basic " + token(livekit),
    }[case]
    resp = post(egress_server, "ListEgress", b"{}", auth=auth)
    assert_twirp(resp, 401, "unauthenticated")


def test_permission_denied_without_room_record(egress_server, livekit):
    resp = post(egress_server, "ListEgress", b"{}", auth="Bearer " + token(livekit, room_record=False))
    assert_twirp(resp, 403, "permission_denied", "roomRecord")


def test_malformed_bodies(egress_server, livekit):
    auth = "Bearer " + token(livekit)
    assert_twirp(post(egress_server, "StartRoomCompositeEgress", b"{not json", auth=auth), 400, "malformed")
    assert_twirp(post(egress_server, "StartRoomCompositeEgress", b"\xff\xfe\x00garbage", auth=auth,
                      ctype="application/protobuf"), 400, "malformed")
    assert_twirp(post(egress_server, "StartRoomCompositeEgress", b'{"room_name": 5}', auth=auth), 400, "malformed")
    assert_twirp(post(egress_server, "NoSuchMethod", b"{}", auth=auth), 404, "bad_route")


async def test_client_errors(egress_api, lkapi, room_name, egress_server, tmp_path):
    with pytest.raises(api.TwirpError) as e:
        await egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
            room_name="no-such-room", file_outputs=[api.EncodedFileOutput(filepath="x.mp4")]))
    assert e.value.code == "not_found" and e.value.status == 404

    with pytest.raises(api.TwirpError) as e:
        await egress_api.egress.stop_egress(api.StopEgressRequest(egress_id="EG_doesnotexist"))
    assert e.value.code == "not_found"

    with pytest.raises(api.TwirpError) as e:
        await egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest())
    assert e.value.code == "invalid_argument" and "room_name" in e.value.message

    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    root = egress_server.recordings_dir.resolve()
    before = {p for p in root.parent.rglob("*")}
    for filepath in ("../escape.mp4", "a/../../escape.mp4", "/../../escape.mp4"):
        with pytest.raises(api.TwirpError) as e:
            await egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
                room_name=room_name, file_outputs=[api.EncodedFileOutput(filepath=filepath)]))
        assert e.value.code == "invalid_argument" and "file_outputs[0].filepath" in e.value.message
    assert {p for p in root.parent.rglob("*")} - before <= {p for p in root.rglob("*")}
    assert not list(root.parent.rglob("escape.mp4"))

    with pytest.raises(api.TwirpError) as e:
        await egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(room_name=room_name))
    assert e.value.code == "invalid_argument" and "output" in e.value.message

    with pytest.raises(api.TwirpError) as e:
        await egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
            room_name=room_name, layout="carousel", file_outputs=[api.EncodedFileOutput()]))
    assert e.value.code == "invalid_argument" and "layout" in e.value.message

    with pytest.raises(api.TwirpError) as e:
        await egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
            room_name=room_name, advanced=api.EncodingOptions(width=99999),
            file_outputs=[api.EncodedFileOutput()]))
    assert e.value.code == "invalid_argument" and "advanced.width" in e.value.message
    # the service is still fine after all that
    assert (await egress_api.egress.list_egress(api.ListEgressRequest())) is not None
