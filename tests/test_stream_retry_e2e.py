"""StreamInfo retries through the Egress API: a room composite streaming to nginx-rtmp whose server goes away
and comes back reports ``retries`` and ``last_retry_at`` while ACTIVE, read with LiveKit's Python and Node
clients, and ends FINISHED with both connections recorded by the server."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time

from livekit import api

from conftest import wait_status
from pyegress.devtools.probe import ffprobe
from support.rtmp_server import RtmpServer
from test_node_client import NODE_DIR

S = api.EgressStatus


async def _stream(egress_api, egress_id: str) -> api.StreamInfo:
    (info,) = (await egress_api.egress.list_egress(api.ListEgressRequest(egress_id=egress_id))).items
    (stream,) = info.stream_results
    return stream


async def test_stream_retries_reach_the_python_and_node_clients(lkapi, egress_api, publishers, room_name,
                                                              egress_server, livekit, tmp_path):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1)
    with RtmpServer(tmp_path / "rtmp") as rtmp:
        info = await egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
            room_name=room_name, stream_outputs=[api.StreamOutput(protocol=api.StreamProtocol.RTMP,
                                                                  urls=[rtmp.url("retried")])]))
        await wait_status(egress_api, info.egress_id, lambda i: i.status == S.EGRESS_ACTIVE)
        await asyncio.sleep(3)
        rtmp.stop()
        await asyncio.sleep(2)
        rtmp.start()
        deadline = time.monotonic() + 20
        while (stream := await _stream(egress_api, info.egress_id)).retries < 1 or len(rtmp.recordings("retried")) < 2:
            assert time.monotonic() < deadline, stream
            await asyncio.sleep(0.5)
        assert stream.status == api.StreamInfo.ACTIVE and stream.last_retry_at > stream.started_at > 0

        node = await asyncio.create_subprocess_exec(
            "node", str(NODE_DIR / "stream_info.mjs"), egress_server.url, livekit.api_key, livekit.api_secret,
            info.egress_id, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, _ = await asyncio.wait_for(node.communicate(), 60)
        seen = json.loads(out.decode().strip().splitlines()[-1])
        assert "error" not in seen, seen["error"]
        (node_stream,) = seen["streams"]
        assert node_stream["status"] == "ACTIVE" and node_stream["retries"] >= 1
        assert int(node_stream["lastRetryAt"]) >= stream.last_retry_at
        assert "retried" not in node_stream["url"]  # the stream key stays masked

        await asyncio.sleep(3)
        await egress_api.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
        final, _ = await wait_status(egress_api, info.egress_id,
                                     lambda i: i.status in (S.EGRESS_COMPLETE, S.EGRESS_FAILED))
    assert final.status == S.EGRESS_COMPLETE, final.error
    (stream,) = final.stream_results
    assert stream.status == api.StreamInfo.FINISHED and stream.retries >= 1
    second = rtmp.recordings("retried")[1]
    assert ffprobe(second).duration >= 2.0  # the new connection carried the composite
