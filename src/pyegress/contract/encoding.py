"""Encoding settings: what LiveKit's ``preset`` / ``advanced`` options resolve to.

Preset values follow LiveKit's documented EncodingOptionsPreset table (``docs/wire.md``):
H264_720P_30 = 1280x720 30 fps 3000 kbps, H264_720P_60 = 4500 kbps,
H264_1080P_30 = 4500 kbps, H264_1080P_60 = 6000 kbps, PORTRAIT_* the same
with width and height swapped. Audio is AAC 128 kbps. One deliberate deviation:
audio is encoded at 48 kHz (WebRTC's native rate, no resampling) where LiveKit
uses 44.1 kHz; ``advanced.audio_frequency`` selects 44100 if wanted.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

VideoCodec = Literal["h264_baseline", "h264_main", "h264_high", "vp8"]
AudioCodec = Literal["aac", "opus", "mp3"]


class EncodingSettings(BaseModel):
    """Resolved encoding parameters of one egress.

    Units: ``width``/``height`` pixels, ``framerate`` frames per second,
    bitrates in kbps, ``audio_frequency`` Hz, ``key_frame_interval`` seconds.
    """

    width: int = 1280
    height: int = 720
    depth: int = 24
    framerate: int = 30
    video_codec: VideoCodec = "h264_main"
    video_bitrate: int = 3000
    key_frame_interval: float = 4.0
    audio_codec: AudioCodec = "aac"
    audio_bitrate: int = 128
    audio_frequency: int = 48000

    @property
    def gop_frames(self) -> int:
        """Keyframe interval in frames."""
        return max(1, round(self.key_frame_interval * self.framerate))


#: (width, height, framerate, video_bitrate kbps) per LiveKit preset name.
PRESETS: dict[str, tuple[int, int, int, int]] = {
    "H264_720P_30": (1280, 720, 30, 3000),
    "H264_720P_60": (1280, 720, 60, 4500),
    "H264_1080P_30": (1920, 1080, 30, 4500),
    "H264_1080P_60": (1920, 1080, 60, 6000),
    "PORTRAIT_H264_720P_30": (720, 1280, 30, 3000),
    "PORTRAIT_H264_720P_60": (720, 1280, 60, 4500),
    "PORTRAIT_H264_1080P_30": (1080, 1920, 30, 4500),
    "PORTRAIT_H264_1080P_60": (1080, 1920, 60, 6000),
}


def from_preset(name: str) -> EncodingSettings:
    """Settings for a LiveKit preset name.

    Raises:
        KeyError: unknown preset (``PASSTHROUGH`` is not a composite preset).
    """
    w, h, fps, kbps = PRESETS[name]
    return EncodingSettings(width=w, height=h, framerate=fps, video_bitrate=kbps)
