"""HLS segments output (RFC 8216): MPEG-TS or fragmented-MP4 segments, an EVENT playlist and a live playlist.

Segments are cut at the first video keyframe at or after each
``segment_duration`` boundary (the encoder's keyframe interval is set to the
segment duration, so segments are exact); audio-only output is cut on audio
packet times. ``#EXTINF`` is each segment's real length. The full playlist is
``#EXT-X-PLAYLIST-TYPE:EVENT`` until the end (``#EXT-X-ENDLIST``); the live
playlist is a sliding window of the last :data:`LIVE_WINDOW` segments. Both are
rewritten atomically after every segment. With an upload destination, each
segment is queued for upload as soon as it is complete, then the playlists (a
player fetches what a playlist lists, so no playlist may name a segment before
the segment is stored). Every file is written to a temp file in the segments' directory and renamed
into place once complete (:class:`~pyegress.storage.local.LocalDir`), so no symlink there is followed
and a player never finds half a segment.

Where to cut is decided here, once, for both containers (``SegmentsTarget.container``); writing the
segments' files is the container's part: :class:`_TsSegments` (``<prefix>_00000.ts``, each a
self-contained MPEG-TS) or :class:`_Fmp4Segments` (``<prefix>_init.mp4`` + ``<prefix>_00000.m4s``,
RFC 8216 §3.3, listed after ``#EXT-X-MAP``). Layout and names: ``docs/hls.md``.
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

import av

from ...storage.local import LocalDir
from ...contract.events import SegmentsResult
from ...contract.job import SegmentsTarget
from ..encode.encoder import MediaEncoder
from .base import Muxer, Output, utc_stamp
from .isobmff import TopLevelBoxes, fragment_samples, track_ids

LIVE_WINDOW = 5
#: ``#EXT-X-VERSION`` per container: EXT-X-MAP outside an I-frame playlist needs 6 or more (RFC 8216 §7);
#: fMP4 playlists say 7, as LiveKit's egress and Apple's HLS authoring spec have them.
PLAYLIST_VERSION = {"ts": 3, "fmp4": 7}

#: A segment's file is complete: its name and size in bytes.
Written = Callable[[str, int], None]


def audio_cut_us(target: SegmentsTarget) -> int:
    """How far past its start (µs) an audio-only segment ends: at the first packet this far on (the
    segment duration less 1 ms, so that packets on an exact grid cut at the boundary, not one later)."""
    return round(target.segment_duration * 1e6) - 1000


@dataclass
class _Segment:
    name: str
    start_s: float
    duration_s: float
    size: int
    wall_ns: int


@dataclass
class _Started:
    """A segment whose packets are being (or were) muxed; ``end_s`` is set when the next one starts."""

    name: str
    start_s: float
    wall_ns: int
    end_s: float | None = None


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
        self.dir = Path(target.directory)
        self._local = LocalDir(self.dir)
        self.wall_start_ns = wall_start_ns
        self._has_video = encoder.video_stream is not None
        self._frame_s = 1.0 / encoder.settings.framerate if self._has_video else 0.0
        container = _Fmp4Segments if target.container == "fmp4" else _TsSegments
        self._files = container(self._local, encoder, target, self._segment_written, self._init_written)
        self._audio_cut = Fraction(audio_cut_us(target), 1_000_000)
        self._start: Fraction | None = None  # media time (s) of the segment being muxed
        self._started: deque[_Started] = deque()  # started, file not complete yet
        self._count = 0  # segments started
        self._init: tuple[str, int] | None = None  # fMP4's initialization segment: name, size
        self._last_end_s = 0.0
        self.segments: list[_Segment] = []
        self._pending_audio: deque[av.Packet] = deque()
        self._video_dts_s = float("-inf")
        self._ended = False

    # ---- packets ----------------------------------------------------------
    def write_packets(self, kind: str, packets: list[av.Packet]) -> None:
        if not self._has_video:  # audio only: cut on audio time
            for packet in packets:
                t = packet.pts * packet.time_base
                if self._start is None or t - self._start >= self._audio_cut:
                    self._cut(t)
                self._files.mux("audio", [packet])
                self._last_end_s = float(t + packet.duration * packet.time_base)
            return
        if kind == "audio":
            # Audio is encoded with less delay than video; it waits until video has reached its
            # time, so each segment gets the audio of its own time span.
            self._pending_audio.extend(packets)
            self._flush_audio(self._video_dts_s)
            return
        for packet in packets:
            t = packet.pts * packet.time_base
            if self._start is None:
                self._cut(t)
            elif packet.is_keyframe and t - self._start >= self.target.segment_duration - self._frame_s / 2:
                self._flush_audio(float(t))
                self._cut(t)
            self._files.mux("video", [packet])
            self._last_end_s = max(self._last_end_s, float(t) + self._frame_s)
            self._video_dts_s = float(packet.dts * packet.time_base) if packet.dts is not None else float(t)
            self._flush_audio(self._video_dts_s)

    def _flush_audio(self, until_s: float) -> None:
        """Mux pending audio packets that start before ``until_s`` into the current segment."""
        if self._start is None:
            return
        while self._pending_audio and float(self._pending_audio[0].pts * self._pending_audio[0].time_base) < until_s:
            self._files.mux("audio", [self._pending_audio.popleft()])

    def _segment_name(self, start_s: float) -> str:
        ext = self._files.extension
        if self.target.suffix == "timestamp":
            return f"{self.target.prefix}_{utc_stamp(self.wall_start_ns + start_s * 1e9)}{ext}"
        return f"{self.target.prefix}_{self._count:05d}{ext}"

    def _cut(self, t: Fraction) -> None:
        """Start a new segment at media time ``t`` (s) with the next packet muxed."""
        start_s = float(t)
        if self._started:
            self._started[-1].end_s = start_s
        name = self._segment_name(start_s)
        self._files.start(name)
        self._start = t
        self._count += 1
        self._started.append(_Started(name, start_s, int(self.wall_start_ns + start_s * 1e9)))

    def _segment_written(self, name: str, size: int) -> None:
        """The container completed segment ``name`` (they complete in order): list it, upload it."""
        started = self._started.popleft()
        assert started.name == name and started.end_s is not None, (started, name)
        self.segments.append(_Segment(name, started.start_s, started.end_s - started.start_s, size,
                                      started.wall_ns))
        if self.uploads is not None:
            self.uploads.submit(self.target.upload, self.dir / name, self.target.reported_prefix + name)
        if not self._ended:  # at the end the playlists are written once, closed
            self._write_playlists()

    def _init_written(self, name: str, size: int) -> None:
        """fMP4's initialization segment is stored, before any segment (a playlist names it first)."""
        self._init = (name, size)
        if self.uploads is not None:
            self.uploads.submit(self.target.upload, self.dir / name, self.target.reported_prefix + name)

    # ---- playlists --------------------------------------------------------
    def _playlist(self, segments: list[_Segment], *, live: bool) -> str:
        target = max([math.ceil(s.duration_s - 1e-3) for s in segments] + [math.ceil(self.target.segment_duration)])
        first = len(self.segments) - len(segments)
        lines = ["#EXTM3U", f"#EXT-X-VERSION:{PLAYLIST_VERSION[self.target.container]}"]
        if not live:
            lines.append("#EXT-X-PLAYLIST-TYPE:EVENT")
        lines += [f"#EXT-X-TARGETDURATION:{target}", f"#EXT-X-MEDIA-SEQUENCE:{first}"]
        if self._init is not None:  # RFC 8216 §4.3.2.5: applies to every segment after it
            lines.append(f'#EXT-X-MAP:URI="{quote(self._init[0])}"')
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
            if self._started:
                self._started[-1].end_s = self._last_end_s
            self._files.finish()
            self._write_playlists()
        finally:
            self._files.discard()  # a segment a failure left unfinished is not published
            self._local.close()

    def result(self, ended_at: int = 0) -> SegmentsResult:
        """What EgressInfo's ``segment_results`` reports so far; ``size`` counts fMP4's initialization
        segment too (bytes stored for this output)."""
        return SegmentsResult(
            playlist_name=f"{self.target.reported_prefix}{self.target.playlist}",
            live_playlist_name=f"{self.target.reported_prefix}{self.target.live_playlist}" if self.target.live_playlist else "",
            playlist_location=self._location(self.target.playlist),
            live_playlist_location=self._location(self.target.live_playlist) if self.target.live_playlist else "",
            duration=int(sum(s.duration_s for s in self.segments) * 1e9),
            size=sum(s.size for s in self.segments) + (self._init[1] if self._init else 0),
            segment_count=len(self.segments), started_at=self.wall_start_ns, ended_at=ended_at)


class _TsSegments:
    """MPEG-TS segments: a container of its own per segment, each playable alone; a segment is complete
    when the next starts (or at :meth:`finish`)."""

    extension = ".ts"

    def __init__(self, local: LocalDir, encoder: MediaEncoder, target: SegmentsTarget, written: Written,
                 init_written: Written) -> None:
        self._local, self._encoder, self._written = local, encoder, written
        self._open: tuple[str, str, BinaryIO, Muxer] | None = None  # name, temp file name, file, muxer

    def start(self, name: str) -> None:
        """Complete the open segment; the next packets go into segment ``name``.

        Raises:
            OSError, av.FFmpegError: a file could not be written, renamed or created.
        """
        self._close()
        temp, file = self._local.create_temp()
        try:
            self._open = (name, temp, file, Muxer(file, self._encoder, format="mpegts"))
        except BaseException:
            file.close()
            self._local.discard(temp)
            raise

    def mux(self, kind: str, packets: list[av.Packet]) -> None:
        self._open[3].mux(kind, packets)

    def finish(self) -> None:
        """Complete the last segment."""
        self._close()

    def _close(self) -> None:
        if self._open is None:
            return
        name, temp, file, muxer = self._open
        self._open = None
        try:
            muxer.close()
            size = os.fstat(file.fileno()).st_size
            file.close()
            self._local.commit(temp, name)
        except BaseException:  # a segment that could not be finished is not published
            file.close()
            self._local.discard(temp)
            raise
        self._written(name, size)

    def discard(self) -> None:
        """Drop the file of a segment a failure left open."""
        if self._open is not None:
            _, temp, file, _ = self._open
            self._open = None
            file.close()
            self._local.discard(temp)


@dataclass
class _Pending:
    """An fMP4 segment not yet written out: it ends after ``end`` samples of the cutting track (None: open)."""

    name: str
    end: int | None = None


class _Fmp4Segments:
    """Fragmented-MP4 segments (RFC 8216 §3.3): one mp4 muxer for the whole recording, so every segment
    continues the same timeline (``tfdt``) and the initialization segment fits them all.

    The muxer writes the ``ftyp`` + ``moov`` first, stored as ``<prefix>_init.mp4``, then a fragment
    (``moof`` + ``mdat``) at every video keyframe (``frag_keyframe``; audio only: at the same
    packet the audio cut rule picks, ``frag_duration`` = :func:`audio_cut_us`). Segments start at
    keyframes, so each is one or more whole fragments: a segment is complete once the fragments
    written out hold as many samples of the cutting track (video, else audio) as were muxed into it
    and the ones before. The fragments arrive later than the packets (FFmpeg interleaves the
    streams), which is why they are counted rather than timed.
    """

    extension = ".m4s"
    #: ``delay_moov``: the ``moov`` waits for the first fragment, so it can carry each track's edit list
    #: (B-frames and AAC priming start before 0; without it video would play 45 ms late).
    MOVFLAGS = "frag_keyframe+empty_moov+delay_moov+default_base_moof+skip_trailer"

    def __init__(self, local: LocalDir, encoder: MediaEncoder, target: SegmentsTarget, written: Written,
                 init_written: Written) -> None:
        self._local, self._encoder, self._target = local, encoder, target
        self._written, self._init_written = written, init_written
        self._kind = "video" if encoder.video_stream is not None else "audio"  # the track segments are cut on
        self._muxer: Muxer | None = None
        self._muxed = 0  # samples of the cutting track muxed
        self._stored = 0  # ... and written out in complete fragments
        self._pending: deque[_Pending] = deque()
        self._stream_index = 0  # the cutting track's stream, and its track_ID in the mp4
        self._track = 0
        self._init = bytearray()
        self._moof = bytearray()
        self._fragment_samples = 0  # of the cutting track, in the fragment being written out
        self._file: tuple[str, BinaryIO] | None = None  # the temp file of the segment being written out
        self._size = 0

    def start(self, name: str) -> None:
        """The next packets go into segment ``name``; the one before ends after what was muxed so far.

        Raises:
            av.FFmpegError: the mp4 muxer cannot be opened.
        """
        if self._muxer is None:
            options = {"movflags": self.MOVFLAGS}
            if self._kind == "audio":
                options["frag_duration"] = str(audio_cut_us(self._target))
            self._muxer = Muxer(TopLevelBoxes(self), self._encoder, format="mp4", options=options)
            # the muxer's timescales come from these: the encoder's own clocks keep every frame and
            # audio packet exact (the default, 1/1000, rounds them to ms)
            settings = self._encoder.settings
            for kind, stream in self._muxer.streams.items():
                stream.time_base = Fraction(1, settings.framerate if kind == "video" else settings.audio_frequency)
            self._stream_index = self._muxer.streams[self._kind].index
        if self._pending:
            self._pending[-1].end = self._muxed
        self._pending.append(_Pending(name))

    def mux(self, kind: str, packets: list[av.Packet]) -> None:
        self._muxer.mux(kind, packets)
        if kind == self._kind:
            self._muxed += sum(1 for p in packets if p.size)  # the mp4 muxer drops empty packets

    def finish(self) -> None:
        """Write the last fragment (the muxer's trailer), which completes the last segment.

        Raises:
            av.FFmpegError, OSError: the muxer or a file failed.
            RuntimeError: the fragments did not end where the segments do (a muxer that cut them
                elsewhere than this class expects).
        """
        if self._muxer is None:
            return
        self._pending[-1].end = self._muxed
        muxer, self._muxer = self._muxer, None
        muxer.close()
        if self._pending:
            raise RuntimeError(f"the mp4 muxer's fragments hold {self._stored} samples, segments {self._muxed}")

    def discard(self) -> None:
        """Drop the file of a segment a failure left unfinished."""
        if self._file is not None:
            temp, file = self._file
            self._file = None
            file.close()
            self._local.discard(temp)

    # ---- the muxer's output, box by box (isobmff.BoxSink) -----------------
    def box_start(self, box_type: bytes, header: bytes) -> None:
        self.box_data(box_type, memoryview(header))

    def box_data(self, box_type: bytes, data: memoryview) -> None:
        if box_type in (b"ftyp", b"moov"):
            self._init += data
        elif box_type == b"moof":
            self._moof += data
        else:
            self._append(data)

    def box_end(self, box_type: bytes) -> None:
        if box_type == b"moov":
            init = bytes(self._init)
            self._track = track_ids(init)[self._stream_index]
            name = f"{self._target.prefix}_init.mp4"
            self._local.replace(name, init)
            self._init_written(name, len(init))
        elif box_type == b"moof":
            moof, self._moof = bytes(self._moof), bytearray()
            self._fragment_samples = fragment_samples(moof).get(self._track, 0)
            self._append(memoryview(moof))
        elif box_type == b"mdat":  # the fragment is complete
            self._stored += self._fragment_samples
            self._fragment_samples = 0
            self._complete()

    def _append(self, data: memoryview) -> None:
        if self._file is None:
            self._file, self._size = self._local.create_temp(), 0
        file = self._file[1]
        while data:
            n = file.write(data)
            data, self._size = data[n:], self._size + n

    def _complete(self) -> None:
        """Publish the segments the fragments written out so far complete."""
        while self._pending and self._pending[0].end is not None and self._stored >= self._pending[0].end:
            segment = self._pending.popleft()
            if self._stored != segment.end or self._file is None:
                raise RuntimeError(f"an mp4 fragment runs past the end of segment {segment.name} "
                                   f"({self._stored} samples, the segment ends at {segment.end})")
            (temp, file), self._file = self._file, None
            try:
                file.close()
                self._local.commit(temp, segment.name)
            except BaseException:
                self._local.discard(temp)
                raise
            self._written(segment.name, self._size)
