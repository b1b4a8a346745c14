"""Outputs closed in edge cases still leave files a player opens."""

from __future__ import annotations

from pyegress.devtools.probe import ffprobe
from pyegress.media.encode.encoder import MediaEncoder
from pyegress.contract.encoding import EncodingSettings
from pyegress.media.outputs.file import FileOutput
from pyegress.contract.job import FileTarget


def test_mp4_closed_before_its_first_packet_is_valid(tmp_path):
    """A stop that lands before the first encoded packet: an MP4 with header and trailer, not zero bytes."""
    encoder = MediaEncoder(EncodingSettings(), video=True, audio=True)
    path = tmp_path / "empty.mp4"
    FileOutput(FileTarget(path=str(path), filename=path.name), encoder, wall_start_ns=0).close()
    probe = ffprobe(path)
    assert probe.stream("video")["codec_name"] == "h264" and probe.stream("audio")["codec_name"] == "aac"
