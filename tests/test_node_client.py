"""The same start/list/stop flow through LiveKit's Node ``livekit-server-sdk`` (proto3 JSON Twirp)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

from livekit import api

from pyegress.devtools.probe import ffprobe

NODE_DIR = Path(__file__).parent / "node"


async def test_node_sdk_flow(lkapi, publishers, room_name, egress_server, livekit):
    assert shutil.which("node"), "node is installed by scripts/setup"
    assert (NODE_DIR / "node_modules" / "livekit-server-sdk").is_dir(), "run scripts/setup --test"
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 2)
    proc = await asyncio.create_subprocess_exec(
        "node", str(NODE_DIR / "egress_flow.mjs"), egress_server.url, livekit.api_key, livekit.api_secret,
        room_name, "4", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert "error" not in result, result["error"]
    assert result["startStatus"] == "EGRESS_STARTING"
    assert result["activeStatus"] == "EGRESS_ACTIVE"
    assert result["activeIds"] == [result["egressId"]]
    assert result["stopStatus"] == "EGRESS_ENDING"
    assert result["endStatus"] == "EGRESS_COMPLETE"
    # Node sends the bare output both as legacy `file` and in `fileOutputs`: one recording, not two
    (file_result,) = result["fileResults"]
    assert file_result["filename"] == f"node/{room_name}.mp4"
    assert not list((egress_server.recordings_dir / "node").glob(f"{room_name}-*.mp4"))
    probe = ffprobe(file_result["location"])
    assert probe.stream("video")["codec_name"] == "h264" and probe.stream("audio")["codec_name"] == "aac"
    assert abs(probe.duration - 4) < 0.8
    assert abs(file_result["duration"] / 1e9 - probe.duration) < 0.2
    # a Twirp error the Node SDK parses (status and code from the JSON body)
    assert result["unknownStopError"]["status"] == 404
    assert result["unknownStopError"]["code"] == "not_found"
