"""RTMP reconnection (media/outputs/stream.py) against a real nginx-rtmp that goes away and comes back:
StreamInfo.retries / last_retry_at, the stream ACTIVE while it reconnects, the new connection carrying
decodable media, and FAILED once the server stays away for the retry window."""

from __future__ import annotations

import threading
import time

import av
import numpy as np
import pytest

from pyegress.contract.encoding import EncodingSettings
from pyegress.media.encode.encoder import MediaEncoder
from pyegress.media.outputs import stream as stream_module
from pyegress.media.outputs.stream import StreamOutput

from pyegress.devtools.probe import ffprobe
from support.rtmp_server import RtmpServer


class _Feed:
    """Encodes 320x180 30 fps video (a keyframe a second) and 48 kHz audio in real time into ``output``."""

    def __init__(self, output: StreamOutput, encoder: MediaEncoder) -> None:
        self.output, self.encoder = output, encoder
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "_Feed":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        t0 = time.monotonic()
        n = 0
        while not self._stop.is_set():
            picture = np.full((270, 320), (n * 8) % 256, np.uint8)  # I420 (H * 3/2, W)
            frame = av.VideoFrame.from_ndarray(picture, format="yuv420p")
            self.output.write_packets("video", self.encoder.encode_video(frame, n))
            tone = np.zeros((1600, 2), np.int16)  # 1/30 s at 48 kHz
            self.output.write_packets("audio", self.encoder.encode_audio(tone, n * 1600))
            n += 1
            time.sleep(max(0.0, t0 + n / 30 - time.monotonic()))


def _encoder() -> MediaEncoder:
    return MediaEncoder(EncodingSettings(width=320, height=180, framerate=30, video_bitrate=300,
                                         key_frame_interval=1.0), video=True, audio=True)


def _wait(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture()
def rtmp(tmp_path):
    with RtmpServer(tmp_path / "rtmp") as server:
        yield server


def test_a_broken_rtmp_stream_reconnects_and_counts_its_retries(rtmp):
    encoder = _encoder()
    out = StreamOutput(rtmp.url("retry"), encoder)
    with _Feed(out, encoder):
        _wait(lambda: out.started_at > 0, 10, "the stream to connect")
        time.sleep(2)
        rtmp.stop()  # the server goes away mid-stream ...
        time.sleep(2.5)
        assert out.result().status == "ACTIVE" and out.retries >= 1
        rtmp.start()  # ... and comes back on the same port
        _wait(lambda: len(rtmp.recordings("retry")) == 2 and rtmp.recordings("retry")[1].stat().st_size > 20_000,
              15, "a second connection to carry media")
        time.sleep(2)
        out.close()
    result = out.result()
    assert result.status == "FINISHED", result.error
    assert result.retries == out.retries >= 1
    assert 0 < result.last_retry_at <= time.time_ns() and result.last_retry_at > result.started_at
    first, second = rtmp.recordings("retry")
    for flv in (first, second):
        probe = ffprobe(flv)
        assert probe.stream("video")["codec_name"] == "h264" and probe.stream("audio")["codec_name"] == "aac"
        assert probe.duration >= 1.5, flv
    encoder.close()


def test_a_stream_whose_server_stays_away_fails_after_the_retry_window(rtmp, monkeypatch):
    monkeypatch.setattr(stream_module, "RETRY_WINDOW_S", 3.0)
    encoder = _encoder()
    out = StreamOutput(rtmp.url("gone"), encoder)
    with _Feed(out, encoder):
        _wait(lambda: out.started_at > 0, 10, "the stream to connect")
        time.sleep(1.5)
        rtmp.stop()
        _wait(lambda: out.status != "ACTIVE", 15, "the stream to fail")
    result = out.result()
    assert result.status == "FAILED" and "did not help" in result.error
    assert result.retries >= 1 and result.ended_at >= result.last_retry_at > 0
    out.close()
    encoder.close()


def test_a_url_that_never_carried_media_fails_at_once_without_retries():
    encoder = _encoder()
    out = StreamOutput("rtmp://127.0.0.1:9/live/nobody-listens", encoder)
    with _Feed(out, encoder):
        _wait(lambda: out.status != "ACTIVE", 10, "the stream to fail")
    assert out.result().status == "FAILED" and out.retries == 0 and out.last_retry_at == 0
    out.close()
    encoder.close()
