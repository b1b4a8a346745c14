"""ListEgress in pages (``page_token`` / ``next_page_token``, livekit_egress.proto) through LiveKit's own
clients, Python ``livekit-api`` (protobuf) and the Node SDK's types (JSON), against ``pyegress serve`` with
real egresses of a real livekit-server."""

from __future__ import annotations

import asyncio
import json
import subprocess

import httpx
import pytest
from livekit import api
from livekit.protocol.models import TokenPagination

from conftest import wait_status
from pyegress.devtools.pyegress_server import PyegressServer
from test_api_security import bearer
from test_node_client import NODE_DIR

S = api.EgressStatus
ENDED = (S.EGRESS_COMPLETE, S.EGRESS_FAILED, S.EGRESS_ABORTED, S.EGRESS_LIMIT_REACHED)
TWIRP = "/twirp/livekit.Egress/"


async def record_briefly(lk: api.LiveKitAPI, room: str, name: str) -> str:
    """Start an audio-only room composite, stop it at once, wait for its end: one more egress record."""
    info = await lk.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
        room_name=room, audio_only=True, file_outputs=[api.EncodedFileOutput(filepath=f"{name}.ogg")]))
    await lk.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
    await wait_status(lk, info.egress_id, lambda i: i.status in ENDED, timeout_s=30)
    return info.egress_id


async def test_list_egress_in_pages(livekit, lkapi, room_name, tmp_path):
    other = room_name + "-other"
    for room in (room_name, other):
        await lkapi.room.create_room(api.CreateRoomRequest(name=room))
    with PyegressServer(tmp_path / "paged", livekit.url, livekit.api_key, livekit.api_secret,
                        extra_env={"PYEGRESS_LIST_EGRESS_PAGE_SIZE": "2"}) as server:
        async with api.LiveKitAPI(server.url, livekit.api_key, livekit.api_secret) as lk:
            started = [await record_briefly(lk, room_name, f"p{i}") for i in range(5)]
            await record_briefly(lk, other, "other")

            pages, token = [], TokenPagination()
            while True:
                reply = await lk.egress.list_egress(api.ListEgressRequest(room_name=room_name, page_token=token))
                pages.append([i.egress_id for i in reply.items])
                if not reply.HasField("next_page_token"):
                    break
                token = reply.next_page_token
            # in the order they were started, each once; without page_token, all at once
            assert pages == [started[:2], started[2:4], started[4:]]
            everything = await lk.egress.list_egress(api.ListEgressRequest(room_name=room_name))
            assert [i.egress_id for i in everything.items] == started
            assert not everything.HasField("next_page_token")

            second = await lk.egress.list_egress(api.ListEgressRequest(room_name=room_name,
                                                                       page_token=TokenPagination()))
            for request in (api.ListEgressRequest(room_name=room_name, page_token=TokenPagination(token="x")),
                            api.ListEgressRequest(room_name=other, page_token=second.next_page_token)):
                with pytest.raises(api.TwirpError) as e:
                    await lk.egress.list_egress(request)
                assert (e.value.status, e.value.code) == (400, "invalid_argument")
                assert e.value.message.startswith("page_token: ") and e.value.metadata == {"argument": "page_token"}

        # a token limited to the other room is narrowed to it, so the first room's token is refused
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            limited = bearer(livekit, "ann", room_record=True, room=other)
            resp = await client.post(TWIRP + "ListEgress", headers=limited, json={
                "page_token": {"token": second.next_page_token.token}})
            assert resp.status_code == 400 and resp.json()["meta"] == {"argument": "page_token"}, resp.text
            resp = await client.post(TWIRP + "ListEgress", headers=limited, json={"page_token": {}})
            assert [i["room_name"] for i in resp.json()["items"]] == [other] and "next_page_token" not in resp.json()

        proc = await asyncio.create_subprocess_exec(
            "node", str(NODE_DIR / "list_pages.mjs"), server.url, livekit.api_key, livekit.api_secret, room_name,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert "error" not in result, result["error"]
    assert result["pages"] == pages
    bad = result["badToken"]
    assert (bad["status"], bad["code"], bad["meta"]) == (400, "invalid_argument", {"argument": "page_token"})
