"""Stream output: live RTMP(S) or SRT to one URL, on a thread of its own.

Connecting and sending can block for seconds on a slow or dead server, so each
URL has its own thread and a bounded queue of packet copies: a failing URL
never stalls the encoder or the other outputs, and ends on its own with status
FAILED while the egress goes on. A stream joins at a video keyframe and its
timestamps start at 0 there, so a URL added while recording (UpdateStream)
gets a clean stream.

An RTMP connection that breaks after it has carried media is opened again, as
LiveKit's egress does (livekit/egress ``pkg/pipeline/builder/stream.go``): every
attempt counts in ``StreamInfo.retries`` and ``last_retry_at``, the stream stays
ACTIVE meanwhile, rejoins at the next keyframe from timestamp 0, and FAILs once it
has been down for :data:`RETRY_WINDOW_S`. A URL that never carried media (a wrong
host, app or key) fails at its first error; SRT fails at its first error too.

RTMP(S) is FLV muxed by PyAV straight to the URL. SRT is MPEG-TS (as LiveKit
sends it over SRT) handed to Debian's ``ffmpeg``, whose libsrt does the
protocol: PyAV's bundled FFmpeg is built without libsrt.
"""

from __future__ import annotations

import logging
import queue
import subprocess
import threading
import time
from urllib.parse import urlsplit

import av

from ...contract.events import StreamResult
from ...contract.streams import redact_error, redact_url
from ..encode.encoder import MediaEncoder
from .base import Muxer, Output

log = logging.getLogger(__name__)

QUEUE_PACKETS = 600  # ~5 s of 30 fps video plus audio; more than that and the server is too slow
#: How long (s) a broken RTMP stream is reconnected before it fails (LiveKit's livenessIdleTimeout)
RETRY_WINDOW_S = 30.0
#: Seconds between reconnection attempts: the first, then each later one
RETRY_DELAYS_S = (1.0, 2.0)


class SrtSender:
    """An ``ffmpeg`` child that reads MPEG-TS on :attr:`stdin` and sends it, remuxed as is, to an SRT URL.

    Raises:
        OSError: ffmpeg cannot be started.
    """

    def __init__(self, url: str) -> None:
        # Small probe: the input is our own TS with in-band SPS/PPS and ADTS, known at its first packets.
        self._proc = subprocess.Popen(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-probesize", "65536", "-analyzeduration", "0",
             "-f", "mpegts", "-i", "pipe:0", "-map", "0", "-c", "copy", "-f", "mpegts", url],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.stdin = self._proc.stdin
        self._error: str | None = None

    def close(self, timeout_s: float = 10.0) -> str:
        """End the input and wait for ffmpeg; returns its error ("" when it sent everything), as ffmpeg
        wrote it (the URL and its secrets in it: :meth:`StreamOutput._fail` redacts). Idempotent."""
        if self._error is None:
            self._error = self._finish(timeout_s)
        return self._error

    def _finish(self, timeout_s: float) -> str:
        try:
            self.stdin.close()
        except OSError:
            pass  # ffmpeg already gone: its exit status says why
        try:
            self._proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
            return "the SRT sender did not finish in time"
        if self._proc.returncode == 0:
            return ""
        err = self._proc.stderr.read().decode(errors="replace").strip()
        return err.splitlines()[-1] if err else f"ffmpeg exited {self._proc.returncode}"


class StreamOutput(Output):
    """Sends the encoder's packets to ``url``: FLV over RTMP(S), or MPEG-TS over SRT (:class:`SrtSender`)."""

    def __init__(self, url: str, encoder: MediaEncoder) -> None:
        self.url = url
        self.encoder = encoder
        self.status = "ACTIVE"
        self.error = ""
        self.started_at = 0
        self.ended_at = 0
        self.retries = 0  # reconnection attempts (StreamInfo.retries)
        self.last_retry_at = 0  # unix ns of the last one
        self._queue: queue.Queue = queue.Queue(QUEUE_PACKETS)
        self._has_video = encoder.video_stream is not None
        self._joined = False  # the encoder thread has queued the stream's first keyframe
        self._sender: SrtSender | None = None
        self._thread = threading.Thread(target=self._run, name=f"stream {redact_url(url)}", daemon=True)
        self._thread.start()

    def write_packets(self, kind: str, packets: list[av.Packet]) -> None:
        if self.status != "ACTIVE":
            return
        for packet in packets:
            if not self._joined:
                if not self._can_start(kind, packet):
                    continue  # join at a keyframe
                self._joined = True
            copy = av.Packet(bytes(packet))
            copy.pts, copy.dts, copy.time_base = packet.pts, packet.dts, packet.time_base
            copy.is_keyframe = packet.is_keyframe
            try:
                self._queue.put_nowait((kind, copy))
            except queue.Full:
                self._fail("the server does not take the stream fast enough")
                return

    def _can_start(self, kind: str, packet: av.Packet) -> bool:
        """Whether a stream (or a new connection of it) may start with this packet: a video keyframe, or
        any packet when there is no video."""
        return not self._has_video or (kind == "video" and packet.is_keyframe)

    def _fail(self, error: str) -> None:
        error = redact_error(error, self.url)
        if self.status == "ACTIVE":
            log.warning("stream %s failed: %s", redact_url(self.url), error)
            self.status, self.error, self.ended_at = "FAILED", error, time.time_ns()

    def _open(self) -> Muxer:
        if urlsplit(self.url).scheme == "srt":
            self._sender = SrtSender(self.url)
            return Muxer(self._sender.stdin, self.encoder, format="mpegts")
        return Muxer(self.url, self.encoder, format="flv", options={"rw_timeout": "5000000"})

    def _run(self) -> None:
        retrying = urlsplit(self.url).scheme.startswith("rtmp")
        down_since = 0.0  # monotonic s when the connection broke; 0: up
        while True:
            carried, stopped, error = self._connection()
            if stopped or error is None:
                if error:
                    self._fail(error)
                break
            if not (retrying and (carried or down_since)):
                self._fail(error)  # never carried media: a wrong URL or key, or SRT
                break
            now = time.monotonic()
            if carried:
                down_since = now
            if now - down_since >= RETRY_WINDOW_S:
                self._fail(f"{error} (reconnecting for {RETRY_WINDOW_S:.0f} s did not help)")
                break
            log.warning("stream %s broke (%s); reconnecting", redact_url(self.url), redact_error(error, self.url))
            if not self._discard_for(RETRY_DELAYS_S[0] if carried else RETRY_DELAYS_S[1]):
                break  # stopped while down: nothing more to send
            self.retries, self.last_retry_at = self.retries + 1, time.time_ns()
        if self.status == "ACTIVE":
            self.status, self.ended_at = "FINISHED", time.time_ns()

    def _connection(self) -> tuple[bool, bool, str | None]:
        """One connection: opened at the first packet it sends, fed until stopped or broken. Returns
        whether it carried media, whether it was stopped, and the error that broke it or its closing."""
        muxer = None
        carried = stopped = False
        error: str | None = None
        shift: dict[str, int] = {}
        offset: float | None = None  # media time (s) of the connection's first packet
        try:
            while True:
                item = self._queue.get()
                if item is None or self.status != "ACTIVE":
                    stopped = True
                    break
                kind, packet = item
                if offset is None:
                    if not self._can_start(kind, packet):
                        continue  # a new connection starts at a keyframe too
                    offset = float((packet.dts if packet.dts is not None else packet.pts) * packet.time_base)
                if muxer is None:
                    muxer = self._open()
                    self.started_at = self.started_at or time.time_ns()
                if kind not in shift:
                    shift[kind] = round(offset / float(packet.time_base))
                packet.pts -= shift[kind]
                if packet.dts is not None:
                    packet.dts -= shift[kind]
                if packet.dts is not None and packet.dts < 0:
                    continue  # audio from before the connection's first keyframe
                muxer.mux(kind, [packet])
                carried = True
        except Exception as e:  # connection refused, reset, timeouts: this URL breaks, the egress goes on
            # for SRT, ffmpeg's own message says more than the broken pipe it left behind
            reason = self._sender.close() if self._sender is not None else ""
            error = reason or str(e) or type(e).__name__
        finally:
            if muxer is not None:
                try:
                    muxer.close()
                except Exception as e:
                    error = error or str(e) or type(e).__name__
            if self._sender is not None:
                error = error or self._sender.close() or None
                self._sender = None
        return carried, stopped, error

    def _discard_for(self, seconds: float) -> bool:
        """Drop what the encoder queues for ``seconds`` (the stream is down); False if stopped meanwhile."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                if self._queue.get(timeout=left) is None:
                    return False
            except queue.Empty:
                break
        return self.status == "ACTIVE"

    def stop(self) -> None:
        """Finish the stream without waiting (its thread sends what is queued, then closes)."""
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            self._fail("the server does not take the stream fast enough")

    def close(self) -> None:
        """Finish the stream, waiting up to 10 s for queued packets to be sent."""
        self.stop()
        self._thread.join(10)

    def result(self) -> StreamResult:
        end = self.ended_at or time.time_ns()
        return StreamResult(url=redact_url(self.url), status=self.status, error=self.error,
                            started_at=self.started_at, ended_at=self.ended_at,
                            duration=end - self.started_at if self.started_at else 0,
                            retries=self.retries, last_retry_at=self.last_retry_at)
