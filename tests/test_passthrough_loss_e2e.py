"""Track egress written as the publisher sent it, over a lossy network: packets livekit-server sends to
pyegress's receiver are lost on the way, and the recording still ends well. NACKs get lost packets
back (retransmissions), a frame lost for good makes video wait for the keyframe the receiver asks for
(PLI), and video comes back after a blackout.

The loss is real: livekit-server here advertises one ICE candidate, a UDP relay of the test's own
(``support/lossy_relay.py``), and every client's media goes through it; the relay's counters say
what it dropped, and which NACKs, PLIs and retransmissions went through it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import av
import pytest
from livekit import api

from conftest import EMPTY_TIMEOUT_S, publisher_factory, wait_status
from pyegress.devtools.livekit_server import LiveKitServer
from pyegress.devtools.patterns import VideoPattern
from pyegress.devtools.pyegress_server import PyegressServer
from support.lossy_relay import Counters, LossyRelay, relay_rtc_config

S = api.EgressStatus
ENDED = (S.EGRESS_COMPLETE, S.EGRESS_FAILED, S.EGRESS_ABORTED, S.EGRESS_LIMIT_REACHED)
RELAY_IP = "127.0.0.2"  # livekit-server's media port is on 127.0.0.1, its candidate says 127.0.0.2
RECORD_S = 8.0
WIDTH, HEIGHT = 640, 360  # the generated publisher's defaults


@pytest.fixture(scope="module")
def lossy(tmp_path_factory):
    """A livekit-server whose only media path is a :class:`LossyRelay` (lossless until a recording
    sets some loss), and a ``pyegress serve`` of its own: ``(livekit, relay, serve)``."""
    work = tmp_path_factory.mktemp("lossy")
    with LiveKitServer(log_path=work / "livekit-server.log", rtc=relay_rtc_config(RELAY_IP)) as lk, \
            LossyRelay((RELAY_IP, lk.rtc_udp_port), ("127.0.0.1", lk.rtc_udp_port), seed=7) as relay, \
            PyegressServer(work / "srv", lk.url, lk.api_key, lk.api_secret,
                           extra_env={"PYEGRESS_EMPTY_TIMEOUT_S": str(EMPTY_TIMEOUT_S),
                                      "PYEGRESS_PROGRESS_INTERVAL_S": "1"}) as server:
        yield lk, relay, server


@dataclass
class Recording:
    """A track egress over the lossy relay, what the relay saw of pyegress's receiver, and the file
    read back frame by frame."""

    final: api.EgressInfo
    down: Counters  # the receiver's flow, server→client
    up: Counters  # the receiver's flow, client→server
    log: Path  # the egress's log
    frames: list[tuple[float, int]] = field(default_factory=list)  # (t, publisher's frame counter) per picture
    pictures: int = 0  # pictures decoded, the publisher's counter readable on them or not
    undecodable: list[float] = field(default_factory=list)  # times of the packets the decoder refused

    @property
    def path(self) -> str:
        return self.final.file_results[0].location

    def present(self, since_s: float = 0.0) -> tuple[int, int]:
        """Frames in the file from ``since_s`` on, and how many the publisher sent over that span."""
        counters = [n for t, n in self.frames if t >= since_s]
        return len(counters), counters[-1] - counters[0] + 1

    def summary(self) -> str:
        kept, span = self.present()
        return (f"relay→receiver: {self.down.rtp_forwarded} RTP forwarded, {self.down.rtp_dropped} dropped, "
                f"by payload type {self.down.rtp_by_pt}; receiver→relay feedback {self.up.feedback}; "
                f"frames {kept}/{span} ({kept / span:.0%}); pictures without a readable counter "
                f"{self.pictures - len(self.frames)}; packets that do not decode {self.undecodable}")

    def read(self) -> None:
        """Decode the file packet by packet (``err_detect=explode``): each picture's counter, and every
        packet the decoder refuses (the rest of the file is still read)."""
        pattern = VideoPattern(WIDTH, HEIGHT, 30, 0)
        with av.open(self.path) as c:
            stream = c.streams.video[0]
            stream.codec_context.options = {"err_detect": "explode"}
            for packet in c.demux(stream):
                if packet.pts is None:
                    continue
                t = float(packet.pts * packet.time_base)
                try:
                    pictures = stream.codec_context.decode(packet)
                except av.FFmpegError:
                    self.undecodable.append(round(t, 3))
                    continue
                for picture in pictures:
                    self.pictures += 1
                    n = pattern.read_counter(picture.to_ndarray(format="yuv420p")[:HEIGHT])
                    if n is not None:
                        self.frames.append((t, n))


async def _record(lossy, log_dir: Path, network) -> Recording:
    """A generated publisher (640x360 30 fps VP8 + Opus) in a fresh room; a track egress of its video,
    stopped :data:`RECORD_S` after ACTIVE, while ``network(relay)`` (a coroutine) sets the loss."""
    lk, relay, server = lossy
    room = f"loss-{uuid.uuid4().hex[:8]}"
    async with api.LiveKitAPI(lk.http_url, lk.api_key, lk.api_secret) as lkapi:
        await lkapi.room.create_room(api.CreateRoomRequest(name=room))
        with publisher_factory(lk, log_dir) as start:
            start(room, 1)
            participants = (await lkapi.room.list_participants(api.ListParticipantsRequest(room=room))).participants
            sid = next(t.sid for p in participants for t in p.tracks if t.type == api.TrackType.VIDEO)
            before = {f.client for f in relay.flows()}
            async with api.LiveKitAPI(server.url, lk.api_key, lk.api_secret) as eg:
                info = await eg.egress.start_track_egress(api.TrackEgressRequest(
                    room_name=room, track_id=sid, file=api.DirectFileOutput(filepath=f"{room}/{{track_id}}")))
                active, _ = await wait_status(eg, info.egress_id, lambda i: i.status in (S.EGRESS_ACTIVE, *ENDED))
                assert active.status == S.EGRESS_ACTIVE, active.error
                ends = time.monotonic() + RECORD_S
                try:
                    await asyncio.wait_for(network(relay), RECORD_S)
                    await asyncio.sleep(max(0.0, ends - time.monotonic()))
                finally:
                    relay.set_loss(down=0.0, up=0.0, burst=1)
                await eg.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
                final, _ = await wait_status(eg, info.egress_id, lambda i: i.status in ENDED, timeout_s=30)
    # the receiver's flow: the one new this recording that media went to (a publisher gets only RTCP back)
    flow = max((f for f in relay.flows() if f.client not in before),
               key=lambda f: f.down.rtp_forwarded + f.down.rtp_dropped)
    rec = Recording(final, flow.down, flow.up, server.workdir / "logs" / f"{final.egress_id}.log")
    assert final.status == S.EGRESS_COMPLETE, (final.error, rec.log.read_text()[-3000:])
    rec.read()
    return rec


@pytest.fixture(scope="module")
async def random_loss(lossy, tmp_path_factory) -> Recording:
    """5 % of the media packets toward the clients lost, at random, for the whole recording."""
    async def network(relay):
        relay.set_loss(down=0.05)

    return await _record(lossy, tmp_path_factory.mktemp("random-loss"), network)


BURST_AT_S, BLACKOUT_S = 3.0, 0.3


@pytest.fixture(scope="module")
async def burst_loss(lossy, tmp_path_factory) -> Recording:
    """20 % lost for :data:`BURST_AT_S`, then nothing at all for 300 ms; no loss after that."""
    async def network(relay):
        relay.set_loss(down=0.2)
        await asyncio.sleep(BURST_AT_S)
        relay.blackout(BLACKOUT_S)
        relay.set_loss(down=0.0)

    return await _record(lossy, tmp_path_factory.mktemp("burst-loss"), network)


def _assert_through_the_relay(rec: Recording) -> None:
    # media really came through the relay (no TCP, no other candidate): at least the file's bytes
    assert rec.down.bytes_forwarded >= os.path.getsize(rec.path), (rec.down.bytes_forwarded, rec.summary())
    assert rec.down.rtp_dropped > 0, rec.summary()  # the loss was real
    with av.open(rec.path) as c:
        assert next(c.demux(video=0)).is_keyframe  # a file starts where a decoder can
    assert len(rec.frames) >= 2 * RECORD_S, rec.summary()  # and it has video, loss or not


def test_random_loss_is_repaired_with_nacks(random_loss):
    rec = random_loss
    print(rec.summary())
    _assert_through_the_relay(rec)
    # the receiver asked for what it missed, and got some of it: NACKs up, retransmissions (RTX) down
    assert rec.up.feedback.get("nack", 0) > 0, rec.summary()
    media_pt = max(rec.down.rtp_by_pt, key=rec.down.rtp_by_pt.get)
    assert sum(n for pt, n in rec.down.rtp_by_pt.items() if pt != media_pt) > 0, rec.summary()
    # and hardly ever for a keyframe: a PLI stops livekit-server's retransmissions to the receiver until the
    # next keyframe, so it goes only when NACKs could not repair a loss, or no first keyframe came in time
    assert rec.up.feedback.get("pli", 0) <= 3, rec.summary()


def test_burst_loss_ends_well_and_video_comes_back(burst_loss):
    rec = burst_loss
    print(rec.summary())
    _assert_through_the_relay(rec)
    # 20 % for 3 s and a 300 ms blackout: at least a 300 ms' worth of packets (~30 fps) were dropped
    assert rec.down.rtp_dropped >= 10, rec.summary()
    # after the burst the picture comes back (repaired, or a keyframe was asked for and came) and stays:
    # the last 2 s of the file, from 2.5 s after the blackout on, hold nearly every one of the publisher's frames
    last = rec.frames[-1][0]
    assert last >= RECORD_S - 1.0, (last, rec.summary())
    tail = {n for t, n in rec.frames if t >= last - 2.0}
    assert len(tail) >= 0.8 * 2.0 * 30, (sorted(tail), rec.summary())


RECORDINGS = ["random_loss", "burst_loss"]


@pytest.mark.parametrize("recording", RECORDINGS)
def test_only_intact_pictures_are_written(recording, request):
    rec: Recording = request.getfixturevalue(recording)
    # the decoder refuses no packet, and shows the publisher's counter on every picture
    assert not rec.undecodable and rec.pictures == len(rec.frames), rec.summary()
    # and ffmpeg reports no error either (its output keeps the frames' own times: a constant-rate null
    # output over the gaps loss leaves complains of non-increasing timestamps of its own making)
    done = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", rec.path, "-fps_mode", "vfr", "-f", "null", "-"],
                          capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr


@pytest.mark.parametrize("recording", RECORDINGS)
def test_frames_are_written_once_in_order(recording, request):
    rec: Recording = request.getfixturevalue(recording)
    # each frame once, in the publisher's order: a loss leaves frames out, never repeats one
    counters = [n for _, n in rec.frames]
    assert all(b > a for a, b in zip(counters, counters[1:])), f"a frame repeated or out of order: {counters}"
    times = [t for t, _ in rec.frames]
    assert all(b > a for a, b in zip(times, times[1:]))


def test_random_loss_keeps_nearly_every_frame(random_loss):
    kept, span = random_loss.present()
    assert kept >= 0.9 * span, random_loss.summary()
