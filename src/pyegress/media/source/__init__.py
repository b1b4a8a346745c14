"""Where an egress's media comes from: the one place a source is chosen (:func:`open_source`).

- :mod:`.base`: the :class:`~.base.Source` interface the pipeline drives, and the
  :class:`~.base.MediaSink` it is fed through;
- :mod:`.room`: a room through the ``livekit`` rtc SDK (room composite, participant,
  track composite, track and ``media`` egress), with :mod:`.selection` deciding which tracks;
- :mod:`.web`: a web page in headless Chromium (web egress);
- :mod:`.packets`: a room through the Go packet receiver (LiveKit's server SDK), encoded samples
  with synchronized PTS (track egress written unchanged; with ``spec.receiver == "packets"`` every
  other room egress too, decoded by :class:`~..sync.playout.Playout`).
"""

from __future__ import annotations

from ...contract.job import JobSpec
from .base import CODE_INTERNAL, CODE_ROOM_CONNECTION, MediaSink, PacketSink, Source, SourceError, TrackRef
from .selection import TrackSelection

__all__ = ["CODE_INTERNAL", "CODE_ROOM_CONNECTION", "MediaSink", "PacketSink", "Source", "SourceError", "TrackRef",
           "TrackSelection", "open_source", "receives_packets"]


def open_source(spec: JobSpec, sink: MediaSink | PacketSink, *, audio_channels: int, audio_frame_ms: int) -> Source:
    """The source ``spec`` records from, delivering into ``sink`` (not connected yet: :meth:`Source.start`):
    a :class:`PacketSink` when :func:`receives_packets`, else a :class:`MediaSink`."""
    enc = spec.encoding
    if spec.source == "web":
        from .web import WebSource  # Chromium's helpers are not needed by a room egress
        return WebSource(spec.web_url, enc.width, enc.height, enc.framerate, video=spec.video, audio=spec.audio,
                         sample_rate=enc.audio_frequency, await_start_signal=spec.await_start_signal, sink=sink)
    selection = TrackSelection(spec)
    if receives_packets(spec):
        from .packets import BULK_FLUSH_MS, COMPOSITE_JITTER_MS, PacketSource
        live = spec.video or bool(spec.websocket_url)  # as the pipeline's audio frame size (LIVE_AUDIO_FRAME_MS)
        return PacketSource(spec.ws_url, spec.token, selection=selection, sink=sink, room_name=spec.room_name,
                            jitter_ms=COMPOSITE_JITTER_MS, flush_ms=0 if live else BULK_FLUSH_MS)
    from .room import RoomSource
    return RoomSource(
        spec.ws_url, spec.token, want=selection.wants, gains=selection.gains, whole_room=selection.whole_room,
        room_name=spec.room_name, sample_rate=enc.audio_frequency, channels=audio_channels,
        audio_frame_ms=audio_frame_ms, on_track=sink.on_track, on_track_ended=sink.on_track_ended,
        on_video=sink.on_video, on_audio=sink.on_audio, on_speakers=sink.on_speakers, on_muted=sink.on_muted,
        on_layout=sink.set_layout)


def receives_packets(spec: JobSpec) -> bool:
    """Whether ``spec``'s media comes from the packet receiver as encoded samples (a room egress with
    ``receiver`` ``packets``), to be decoded and placed by a :class:`~..sync.playout.Playout`."""
    return spec.source != "web" and spec.receiver == "packets"
