"""The live preview output: nothing unless watched; then a scaled JPEG about once a second, written atomically."""

from __future__ import annotations

import io
import os
import time

import av
import numpy as np
from PIL import Image

from pyegress.contract.encoding import EncodingSettings
from pyegress.contract.job import JobSpec
from pyegress.media.encode.encoder import MediaEncoder
from pyegress.media.encode.thread import EncoderThread
from pyegress.media.outputs.preview import PreviewOutput, preview_size


def frame(width: int, height: int, y: int = 110, u: int = 60, v: int = 200) -> av.VideoFrame:
    """A uniform yuv420p frame of the given BT.601 limited-range colour."""
    planes = [np.full((height, width), y, np.uint8), np.full((height // 2, width // 2), u, np.uint8),
              np.full((height // 2, width // 2), v, np.uint8)]
    return av.VideoFrame.from_ndarray(np.concatenate([p.ravel() for p in planes]).reshape(-1, width), "yuv420p")


def wait_for(cond, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_preview_size():
    assert preview_size(1920, 1080) == (1280, 720)
    assert preview_size(1280, 720) == (1280, 720)
    assert preview_size(640, 360) == (640, 360)
    assert preview_size(2560, 1081) == (1280, 540)


def test_nothing_is_written_unless_watched(tmp_path):
    """Frames through the encoder thread, as the pipeline sends them, without a ``preview`` request: no
    file, not even the preview's thread."""
    path = tmp_path / "previews" / "EG_x.jpg"
    preview = PreviewOutput(path)
    encoder = MediaEncoder(EncodingSettings(width=320, height=180), video=True, audio=False)
    thread = EncoderThread(encoder, [preview])
    for pts in range(60):
        thread.submit_video(frame(320, 180), pts)
    thread.finish()
    assert preview._thread is None and preview.written == 0
    assert not path.parent.exists()


def test_pipeline_has_a_preview_only_with_video_and_a_path(tmp_path):
    from pyegress.media.pipeline import Pipeline

    base = dict(egress_id="EG_x", ws_url="ws://127.0.0.1:1", token="t", room_name="r")
    with_path = Pipeline(JobSpec(**base, preview_path=str(tmp_path / "EG_x.jpg")), lambda e: None)
    assert with_path.preview_output is not None and with_path.preview_output.path == tmp_path / "EG_x.jpg"
    assert Pipeline(JobSpec(**base), lambda e: None).preview_output is None
    assert Pipeline(JobSpec(**base, video=False, preview_path=str(tmp_path / "a.jpg")),
                    lambda e: None).preview_output is None
    with_path.preview()  # before any frame: only marks the watch
    assert with_path.preview_output._until > time.monotonic()


def test_watched_preview_is_a_scaled_jpeg_at_most_once_per_interval(tmp_path):
    path = tmp_path / "EG_x.jpg"
    preview = PreviewOutput(path, watch_s=10, interval_s=0.5)
    preview.write_frame(frame(1920, 1080), 0)
    assert preview._thread is None  # not watched yet
    preview.request()
    for pts in range(1, 20):  # 19 frames at once: one image
        preview.write_frame(frame(1920, 1080), pts)
    wait_for(lambda: preview.written == 1)
    image = Image.open(io.BytesIO(path.read_bytes()))
    assert image.format == "JPEG" and image.size == (1280, 720)
    r, g, b = image.convert("RGB").getpixel((640, 360))
    assert r > 150 and b < 100  # V 200, U 60: red
    time.sleep(0.55)
    preview.write_frame(frame(1920, 1080, u=200, v=60), 20)  # the interval has passed: a new image
    wait_for(lambda: preview.written == 2)
    r, g, b = Image.open(io.BytesIO(path.read_bytes())).convert("RGB").getpixel((10, 10))
    assert b > 150 and r < 100
    assert [p.name for p in tmp_path.iterdir()] == ["EG_x.jpg"]  # no temp file left
    preview.close()
    assert not path.exists()  # the egress ended: its preview goes


def test_watch_expires(tmp_path):
    preview = PreviewOutput(tmp_path / "p.jpg", watch_s=0.1, interval_s=0.01)
    preview.request()
    time.sleep(0.15)
    preview.write_frame(frame(64, 64), 0)
    assert preview._thread is None and not (tmp_path / "p.jpg").exists()
    preview.close()


def test_planted_symlink_is_replaced_not_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    path = tmp_path / "EG_x.jpg"
    os.symlink(victim, path)
    preview = PreviewOutput(path, interval_s=0)
    preview.request()
    preview.write_frame(frame(64, 64), 0)
    wait_for(lambda: preview.written == 1)
    assert victim.read_bytes() == b"keep" and not path.is_symlink()
    preview.close()
