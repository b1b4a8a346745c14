"""Room egresses received through the livekit SDK (``composite_receiver: sdk`` and ``track_receiver: sdk``, kept
behind the settings):
the same end-to-end tests as on the default packet receiver, run again on a ``pyegress serve`` of their
own that receives decoded frames from the SDK and times them by their arrival.
"""

from __future__ import annotations

import psutil
import pytest
from livekit import api

from conftest import EMPTY_TIMEOUT_S
from pyegress.devtools.probe import ffprobe
from pyegress.devtools.pyegress_server import PyegressServer
from test_egress_types_e2e import _track_sids, run_egress
# Collected again here, against this module's egress_server
from test_egress_types_e2e import (test_participant_egress_records_only_that_participant,  # noqa: F401
                                   test_track_composite_pairs_any_audio_with_any_video, test_track_egress_audio_to_websocket,
                                   test_track_egress_to_files, test_update_layout_changes_the_picture)
from test_room_composite_e2e import (test_audio_only_and_video_only, test_late_joiner_and_leaver,  # noqa: F401
                                     test_room_composite_grid_mp4)


@pytest.fixture(scope="module")
def egress_server(livekit, tmp_path_factory):
    """``pyegress serve`` with every room egress on the livekit SDK."""
    with PyegressServer(tmp_path_factory.mktemp("pyegress-sdk"), livekit.url, livekit.api_key,
                        livekit.api_secret, extra_env={"PYEGRESS_COMPOSITE_RECEIVER": "sdk",
                                                       "PYEGRESS_TRACK_RECEIVER": "sdk",
                                                       "PYEGRESS_EMPTY_TIMEOUT_S": str(EMPTY_TIMEOUT_S),
                                                       "PYEGRESS_PROGRESS_INTERVAL_S": "1"}) as server:
        yield server


async def test_track_receiver_sdk_alone_records_track_files_through_the_sdk(lkapi, livekit, publishers, room_name,
                                                                          tmp_path):
    """``track_receiver: sdk`` with the default (packets) composite receiver: a track file is recorded from
    the SDK's frames, so while it records none of the server's handlers runs the packet receiver."""
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1)
    sids = await _track_sids(lkapi, room_name)
    receivers: list[int] = []

    async def look(_info) -> None:
        receivers.extend(_receivers_of(server.workdir))

    with PyegressServer(tmp_path, livekit.url, livekit.api_key, livekit.api_secret,
                        extra_env={"PYEGRESS_TRACK_RECEIVER": "sdk", "PYEGRESS_HANDLER_POOL_SIZE": "0"}) as server:
        async with api.LiveKitAPI(server.url, livekit.api_key, livekit.api_secret) as client:
            info = client.egress.start_track_egress(api.TrackEgressRequest(
                room_name=room_name, track_id=sids[("pub-0", "AUDIO")], file=api.DirectFileOutput()))
            final, _ = await run_egress(client, info, 3, during=look)
    assert ffprobe(final.file_results[0].location).stream("audio")["codec_name"] == "opus"
    assert receivers == []


def _receivers_of(workdir) -> list[int]:
    """PIDs of packet receivers whose handler belongs to the pyegress server in ``workdir``."""
    found = []
    for proc in psutil.process_iter(["name"]):
        try:
            if proc.info["name"] == "receiver" and str(workdir) in proc.parent().environ().get("PYEGRESS_LOG_DIR", ""):
                found.append(proc.pid)
        except (psutil.Error, AttributeError):
            continue
    return found
