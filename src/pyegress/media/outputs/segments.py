"""HLS segments output (RFC 8216): MPEG-TS segments, an EVENT playlist and a live playlist.

Segments are cut at the first video keyframe at or after each
``segment_duration`` boundary (the encoder's keyframe interval is set to the
segment duration, so segments are exact); audio-only output is cut on audio
packet times. ``#EXTINF`` is each segment's real length. The full playlist is
``#EXT-X-PLAYLIST-TYPE:EVENT`` until the end (``#EXT-X-ENDLIST``); the live
playlist is a sliding window of the last :data:`LIVE_WINDOW` segments. Both are
rewritten atomically after every segment. With an upload destination, each
segment is queued for upload as soon as it is closed, then the playlists (a
player fetches what a playlist lists, so no playlist may name a segment before
the segment is stored). Every file is written to a temp file in the segments' directory and renamed
into place once complete (:class:`~pyegress.storage.local.LocalDir`), so no symlink there is followed
and a player never finds half a segment.
"""

from __future__ import annotations

import math
import os
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

import av

from ...storage.local import LocalDir
from ...contract.events import SegmentsResult
from ...contract.job import SegmentsTarget
from ..encode.encoder import MediaEncoder
from .base import Muxer, Output, utc_stamp

LIVE_WINDOW = 5


@dataclass
class _Segment:
    name: str
    start_s: float
    duration_s: float
    size: int
    wall_ns: int


class SegmentsOutput(Output):
    """Writes ``target`` as HLS; ``wall_start_ns`` is the Unix time of media time 0; ``uploads`` (an
    :class:`~pyegress.storage.uploads.UploadQueue`) takes the files when ``target.upload`` is set.

    Raises:
        OSError: ``target.directory`` cannot be created or opened without following a
            symlink (see :class:`~pyegress.storage.local.LocalDir`).
    """

    def __init__(self, target: SegmentsTarget, encoder: MediaEncoder, wall_start_ns: int, uploads=None) -> None:
        self.target = target
        self.uploads = uploads if target.upload is not None else None
        self.encoder = encoder
        self.dir = Path(target.directory)
        self._local = LocalDir(self.dir)
        self.wall_start_ns = wall_start_ns
        self._has_video = encoder.video_stream is not None
        self._frame_s = 1.0 / encoder.settings.framerate if self._has_video else 0.0
        self._muxer: Muxer | None = None
        self._current: tuple[str, float, int] | None = None  # name, start s, wall ns
        self._temp: tuple[str, BinaryIO] | None = None  # the open segment's temp file: name, file
        self._last_end_s = 0.0
        self.segments: list[_Segment] = []
        self._pending_audio: deque[av.Packet] = deque()
        self._video_dts_s = float("-inf")
        self._ended = False

    # ---- packets ----------------------------------------------------------
    def write_packets(self, kind: str, packets: list[av.Packet]) -> None:
        if not self._has_video:  # audio only: cut on audio time
            for packet in packets:
                t = float(packet.pts * packet.time_base)
                if self._muxer is None:
                    self._open(t)
                elif t - self._current[1] >= self.target.segment_duration - 1e-3:
                    self._close_segment(t)
                    self._open(t)
                self._muxer.mux("audio", [packet])
                self._last_end_s = t + float(packet.duration * packet.time_base)
            return
        if kind == "audio":
            # Audio is encoded with less delay than video; it waits until video has reached its
            # time, so each segment gets the audio of its own time span.
            self._pending_audio.extend(packets)
            self._flush_audio(self._video_dts_s)
            return
        for packet in packets:
            t = float(packet.pts * packet.time_base)
            if self._muxer is None:
                self._open(t)
            elif packet.is_keyframe and t - self._current[1] >= self.target.segment_duration - self._frame_s / 2:
                self._flush_audio(t)
                self._close_segment(t)
                self._open(t)
            self._muxer.mux("video", [packet])
            self._last_end_s = max(self._last_end_s, t + self._frame_s)
            self._video_dts_s = float(packet.dts * packet.time_base) if packet.dts is not None else t
            self._flush_audio(self._video_dts_s)

    def _flush_audio(self, until_s: float) -> None:
        """Mux pending audio packets that start before ``until_s`` into the current segment."""
        if self._muxer is None:
            return
        while self._pending_audio and float(self._pending_audio[0].pts * self._pending_audio[0].time_base) < until_s:
            self._muxer.mux("audio", [self._pending_audio.popleft()])

    def _segment_name(self, start_s: float) -> str:
        if self.target.suffix == "timestamp":
            return f"{self.target.prefix}_{utc_stamp(self.wall_start_ns + start_s * 1e9)}.ts"
        return f"{self.target.prefix}_{len(self.segments):05d}.ts"

    def _open(self, start_s: float) -> None:
        name = self._segment_name(start_s)
        self._temp = self._local.create_temp()
        self._muxer = Muxer(self._temp[1], self.encoder, format="mpegts")
        self._current = (name, start_s, int(self.wall_start_ns + start_s * 1e9))

    def _close_segment(self, end_s: float) -> None:
        name, start_s, wall_ns = self._current
        (temp, file), muxer = self._temp, self._muxer
        self._temp = self._muxer = None
        try:
            muxer.close()
            size = os.fstat(file.fileno()).st_size
            file.close()
            self._local.commit(temp, name)
        except BaseException:  # a segment that could not be finished is not published
            file.close()
            self._local.discard(temp)
            raise
        self.segments.append(_Segment(name, start_s, end_s - start_s, size, wall_ns))
        if self.uploads is not None:
            self.uploads.submit(self.target.upload, self.dir / name, self.target.reported_prefix + name)
        self._write_playlists()

    # ---- playlists --------------------------------------------------------
    def _playlist(self, segments: list[_Segment], *, live: bool) -> str:
        target = max([math.ceil(s.duration_s - 1e-3) for s in segments] + [math.ceil(self.target.segment_duration)])
        first = len(self.segments) - len(segments)
        lines = ["#EXTM3U", "#EXT-X-VERSION:3"]
        if not live:
            lines.append("#EXT-X-PLAYLIST-TYPE:EVENT")
        lines += [f"#EXT-X-TARGETDURATION:{target}", f"#EXT-X-MEDIA-SEQUENCE:{first}"]
        for s in segments:
            wall = datetime.fromtimestamp(s.wall_ns / 1e9, tz=timezone.utc)
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{wall.isoformat(timespec='milliseconds').replace('+00:00', 'Z')}")
            lines += [f"#EXTINF:{s.duration_s:.3f},", s.name]
        if self._ended:
            lines.append("#EXT-X-ENDLIST")
        return "\n".join(lines) + "\n"

    def _write_playlists(self) -> None:
        self._write(self.target.playlist, self._playlist(self.segments, live=False))
        if self.target.live_playlist:
            self._write(self.target.live_playlist, self._playlist(self.segments[-LIVE_WINDOW:], live=True))

    def _write(self, name: str, text: str) -> None:
        self._local.replace(name, text.encode())
        if self.uploads is not None:  # rewritten after every segment: kept locally until the last one
            self.uploads.submit(self.target.upload, self.dir / name, self.target.reported_prefix + name,
                                delete=self._ended)

    def _location(self, name: str) -> str:
        if self.uploads is not None:
            return self.uploads.location(self.target.upload, self.target.reported_prefix + name)
        return str(self.dir / name)

    def close(self) -> None:
        self._ended = True
        try:
            self._flush_audio(float("inf"))
            if self._muxer is not None:
                self._close_segment(self._last_end_s)
            else:
                self._write_playlists()
        finally:
            if self._temp is not None:  # failed before its segment was closed: not published either
                self._temp[1].close()
                self._local.discard(self._temp[0])
            self._local.close()

    def result(self, ended_at: int = 0) -> SegmentsResult:
        """What EgressInfo's ``segment_results`` reports so far."""
        return SegmentsResult(
            playlist_name=f"{self.target.reported_prefix}{self.target.playlist}",
            live_playlist_name=f"{self.target.reported_prefix}{self.target.live_playlist}" if self.target.live_playlist else "",
            playlist_location=self._location(self.target.playlist),
            live_playlist_location=self._location(self.target.live_playlist) if self.target.live_playlist else "",
            duration=int(sum(s.duration_s for s in self.segments) * 1e9), size=sum(s.size for s in self.segments),
            segment_count=len(self.segments), started_at=self.wall_start_ns, ended_at=ended_at)
