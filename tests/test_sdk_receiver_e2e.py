"""Room egresses received through the livekit SDK (``composite_receiver: sdk``, kept behind the setting):
the same end-to-end tests as on the default packet receiver, run again on a ``pyegress serve`` of their
own that receives decoded frames from the SDK and times them by their arrival.
"""

from __future__ import annotations

import pytest

from conftest import EMPTY_TIMEOUT_S
from pyegress.devtools.pyegress_server import PyegressServer
# Collected again here, against this module's egress_server
from test_egress_types_e2e import (test_participant_egress_records_only_that_participant,  # noqa: F401
                                   test_track_composite_pairs_any_audio_with_any_video,
                                   test_track_egress_audio_to_websocket, test_update_layout_changes_the_picture)
from test_room_composite_e2e import (test_audio_only_and_video_only, test_late_joiner_and_leaver,  # noqa: F401
                                     test_room_composite_grid_mp4)


@pytest.fixture(scope="module")
def egress_server(livekit, tmp_path_factory):
    """``pyegress serve`` with every room egress on the livekit SDK."""
    with PyegressServer(tmp_path_factory.mktemp("pyegress-sdk"), livekit.url, livekit.api_key,
                        livekit.api_secret, extra_env={"PYEGRESS_COMPOSITE_RECEIVER": "sdk",
                                                       "PYEGRESS_EMPTY_TIMEOUT_S": str(EMPTY_TIMEOUT_S),
                                                       "PYEGRESS_PROGRESS_INTERVAL_S": "1"}) as server:
        yield server
