"""AudioDecoder (media/source/packets/decode.py): Opus packets to int16 PCM for the mixer."""

import av
import numpy as np
import pytest

from pyegress.media.source.packets.decode import AudioDecoder
from pyegress.media.source.packets.stream import Sample


def _opus_packets(channels: int, seconds: float = 1.0) -> tuple[list[bytes], np.ndarray]:
    """A 440 Hz tone at 48 kHz encoded with libopus in 20 ms packets, and its PCM ``(n, channels)`` int16."""
    layout = "stereo" if channels == 2 else "mono"
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format, enc.bit_rate = 48_000, layout, "s16", 64_000
    t = np.arange(int(48_000 * seconds)) / 48_000
    tone = (np.sin(2 * np.pi * 440 * t) * 10_000).astype(np.int16)
    pcm = np.repeat(tone[:, None], channels, axis=1)
    packets = []
    for i in range(0, len(pcm) - 960 + 1, 960):
        frame = av.AudioFrame.from_ndarray(pcm[i:i + 960].reshape(1, -1), format="s16", layout=layout)
        frame.sample_rate, frame.pts = 48_000, i
        packets += [bytes(p) for p in enc.encode(frame)]
    return packets, pcm


def _sample(data: bytes) -> Sample:
    return Sample(track=1, pts_ns=0, keyframe=True, loss=False, data=data)


@pytest.mark.parametrize("rate,channels", [(48_000, 2), (48_000, 1), (16_000, 1)])
def test_decodes_the_tone_at_the_asked_rate_and_channels(rate, channels):
    packets, _ = _opus_packets(2)
    dec = AudioDecoder(rate, channels)
    pcm = np.concatenate([dec.decode(_sample(p)) for p in packets])
    assert pcm.dtype == np.int16 and pcm.shape[1] == channels
    assert abs(len(pcm) - rate * len(packets) * 0.02) <= rate * 0.02  # 20 ms a packet (resampler delay aside)
    body = pcm[len(pcm) // 4: 3 * len(pcm) // 4, 0].astype(float)
    # the tone comes back: its level, and its frequency by zero crossings
    assert 6_000 < np.sqrt(np.mean(body ** 2)) * np.sqrt(2) < 12_000
    crossings = np.count_nonzero(np.diff(np.signbit(body)))
    assert abs(crossings / 2 / (len(body) / rate) - 440) < 5
    assert dec.errors == 0

