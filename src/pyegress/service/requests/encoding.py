"""Encoding of a request: its ``options`` oneof, a ``preset`` or ``advanced`` settings
(``livekit_egress.proto``; the wire shapes clients send are in ``docs/wire.md``)."""

from __future__ import annotations

from livekit.protocol import egress as eg
from livekit.protocol import models

from ...contract.encoding import PRESETS, EncodingSettings, from_preset
from ...errors import invalid

_VIDEO_CODECS = {models.VideoCodec.DEFAULT_VC: "h264_main", models.VideoCodec.H264_BASELINE: "h264_baseline",
                 models.VideoCodec.H264_MAIN: "h264_main", models.VideoCodec.H264_HIGH: "h264_high",
                 models.VideoCodec.VP8: "vp8"}
_AUDIO_CODECS = {models.AudioCodec.DEFAULT_AC: "aac", models.AudioCodec.AAC: "aac", models.AudioCodec.OPUS: "opus",
                 models.AudioCodec.AC_MP3: "mp3"}


def resolve_encoding(req, field_prefix: str = "") -> EncodingSettings:
    """The encoding of a request with the ``options`` oneof (``preset`` | ``advanced``).

    No option at all means H264_720P_30; a ``preset`` present with value 0 is
    that same preset, chosen explicitly (``docs/wire.md``).

    Raises:
        EgressError: ``invalid_argument`` naming the offending field.
    """
    which = req.WhichOneof("options")
    if which is None:
        return EncodingSettings()
    if which == "preset":
        name = eg.EncodingOptionsPreset.Name(req.preset) if req.preset in eg.EncodingOptionsPreset.values() else ""
        if name not in PRESETS:
            raise invalid(f"{field_prefix}preset", f"{name or req.preset} is not a preset for transcoded egress")
        return from_preset(name)
    adv, base = req.advanced, EncodingSettings()
    f = f"{field_prefix}advanced"
    width, height = adv.width or base.width, adv.height or base.height
    for name, value in (("width", width), ("height", height)):
        if not 16 <= value <= 3840 or value % 2:
            raise invalid(f"{f}.{name}", f"must be an even number of pixels from 16 to 3840, got {value}")
    framerate = adv.framerate or base.framerate
    if not 1 <= framerate <= 60:
        raise invalid(f"{f}.framerate", f"must be 1 to 60 frames per second, got {framerate}")
    if adv.video_codec not in _VIDEO_CODECS:
        raise invalid(f"{f}.video_codec", f"unsupported video codec {adv.video_codec}")
    if adv.audio_codec not in _AUDIO_CODECS:
        raise invalid(f"{f}.audio_codec", f"unsupported audio codec {models.AudioCodec.Name(adv.audio_codec)}")
    frequency = adv.audio_frequency or base.audio_frequency
    if frequency not in (44100, 48000):
        raise invalid(f"{f}.audio_frequency", f"must be 44100 or 48000 Hz, got {frequency}")
    if adv.key_frame_interval < 0:
        raise invalid(f"{f}.key_frame_interval", "must not be negative")
    return EncodingSettings(
        width=width, height=height, depth=adv.depth or base.depth, framerate=framerate,
        video_codec=_VIDEO_CODECS[adv.video_codec], video_bitrate=adv.video_bitrate or base.video_bitrate,
        key_frame_interval=adv.key_frame_interval or base.key_frame_interval,
        audio_codec=_AUDIO_CODECS[adv.audio_codec], audio_bitrate=adv.audio_bitrate or base.audio_bitrate,
        audio_frequency=frequency)
