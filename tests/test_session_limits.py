"""LiveKit's ``session_limits`` (livekit/egress ``pkg/config/base.go``): which limits reach an egress's job, and
``file_output_max_size`` ending a recording once its outputs hold that many bytes."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from pyegress.config import Settings
from pyegress.contract.events import END_LIMIT_REACHED
from pyegress.contract.job import FileTarget, JobSpec
from pyegress.media.recording import Recording
from pyegress.service.job_spec import NO_OPTIONS, new_spec


def settings(monkeypatch, limits: str) -> Settings:
    monkeypatch.setenv("EGRESS_CONFIG_BODY", f"session_limits:\n{limits}")
    return Settings()


def test_limits_that_apply_to_the_outputs_reach_the_job(monkeypatch):
    s = settings(monkeypatch, "  file_output_max_duration: 1m\n  stream_output_max_duration: 30s\n"
                              "  file_output_max_size: 1048576\n")
    file = FileTarget(path="/r/a.mp4", filename="a.mp4")
    only_file = new_spec(s, None, "EG_a", "room", NO_OPTIONS, files=[file])
    assert (only_file.max_duration_s, only_file.max_size_bytes) == (60.0, 1048576)
    both = new_spec(s, None, "EG_b", "room", NO_OPTIONS, files=[file], streams=["rtmp://h/app/key"])
    assert both.max_duration_s == 30.0  # the shortest of its outputs' limits, as LiveKit's limit timer
    # the size limit counts every local output, whatever their kinds (LiveKit measures its whole tmp dir)
    assert new_spec(s, None, "EG_c", "room", NO_OPTIONS, streams=["rtmp://h/app/key"]).max_size_bytes == 1048576


def test_outputs_reaching_file_output_max_size_end_the_recording(monkeypatch):
    async def run() -> list[bool]:
        recording = Recording(JobSpec(egress_id="EG_size", ws_url="", room_name="r", token="",
                                      max_size_bytes=1000), emit=None)
        recording.source = SimpleNamespace(closed=asyncio.Event(), reconnecting=False, present=lambda: True)
        sizes = {"file": 0, "images": 0}
        recording.files = [SimpleNamespace(result=lambda _duration: SimpleNamespace(size=sizes["file"]))]
        recording.images = [SimpleNamespace(size=0)]
        monkeypatch.setattr("pyegress.media.recording.SIZE_CHECK_S", 0.0)
        ended = recording._ended()
        seen = [ended(1)]
        sizes["file"] = 600
        recording.images[0].size = 399
        seen.append(ended(2))
        recording.images[0].size = 400
        seen.append(ended(3))
        assert recording._stop_reason == END_LIMIT_REACHED
        return seen

    assert asyncio.run(run()) == [False, False, True]
