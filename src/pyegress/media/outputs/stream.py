"""Stream output: live RTMP(S) or SRT to one URL, on a thread of its own.

Connecting and sending can block for seconds on a slow or dead server, so each
URL has its own thread and a bounded queue of packet copies: a failing URL
never stalls the encoder or the other outputs, and ends on its own with status
FAILED while the egress goes on. A stream joins at a video keyframe and its
timestamps start at 0 there, so a URL added while recording (UpdateStream)
gets a clean stream.

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
        self._queue: queue.Queue = queue.Queue(QUEUE_PACKETS)
        self._has_video = encoder.video_stream is not None
        self._offset: float | None = None  # media time of the first packet sent, s
        self._sender: SrtSender | None = None
        self._thread = threading.Thread(target=self._run, name=f"stream {redact_url(url)}", daemon=True)
        self._thread.start()

    def write_packets(self, kind: str, packets: list[av.Packet]) -> None:
        if self.status != "ACTIVE":
            return
        for packet in packets:
            if self._offset is None:
                if self._has_video and not (kind == "video" and packet.is_keyframe):
                    continue  # join at a keyframe
                self._offset = float((packet.dts if packet.dts is not None else packet.pts) * packet.time_base)
            copy = av.Packet(bytes(packet))
            copy.pts, copy.dts, copy.time_base = packet.pts, packet.dts, packet.time_base
            copy.is_keyframe = packet.is_keyframe
            try:
                self._queue.put_nowait((kind, copy))
            except queue.Full:
                self._fail("the server does not take the stream fast enough")
                return

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
        muxer = None
        shift: dict[str, int] = {}
        try:
            while True:
                item = self._queue.get()
                if item is None or self.status != "ACTIVE":
                    break
                kind, packet = item
                if muxer is None:
                    muxer = self._open()
                    self.started_at = time.time_ns()
                if kind not in shift:
                    shift[kind] = round(self._offset / float(packet.time_base))
                packet.pts -= shift[kind]
                if packet.dts is not None:
                    packet.dts -= shift[kind]
                if packet.dts is not None and packet.dts < 0:
                    continue  # audio from before the stream's first keyframe
                muxer.mux(kind, [packet])
        except Exception as e:  # connection refused, reset, timeouts: this URL fails, the egress goes on
            # for SRT, ffmpeg's own message says more than the broken pipe it left behind
            reason = self._sender.close() if self._sender is not None else ""
            self._fail(reason or str(e))
        finally:
            if muxer is not None:
                try:
                    muxer.close()
                except Exception as e:
                    self._fail(str(e))
            if self._sender is not None:
                error = self._sender.close()
                if error:
                    self._fail(error)
            if self.status == "ACTIVE":
                self.status, self.ended_at = "FINISHED", time.time_ns()

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
                            duration=end - self.started_at if self.started_at else 0)
