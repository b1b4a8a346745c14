"""Generated publishers: the pictures and sound they make, and what a real subscriber receives."""

from __future__ import annotations

import asyncio
import itertools
import signal
import subprocess
import sys
import time
import timeit
import uuid

import numpy as np
import pytest
from livekit import api, rtc

from pyegress.devtools.livekit_server import LiveKitServer
from pyegress.devtools.patterns import AUDIO_SAMPLE_RATE, AudioPattern, VideoPattern, participant_colour, tone_hz
from pyegress.devtools.publisher import GeneratedPublisher, participant_token


# --- the generated media, without a server ---------------------------------------------------

@pytest.mark.parametrize("size", [(640, 360), (1280, 720), (321, 181)])
def test_video_pattern_is_i420_in_the_participant_colour(size):
    w, h = size
    p = VideoPattern(w, h, 30, index=2)
    buf = p.render(42)
    cw, ch = (w + 1) // 2, (h + 1) // 2
    assert len(buf) == w * h + 2 * cw * ch
    assert (p.frame.width, p.frame.height, p.frame.type) == (w, h, rtc.VideoBufferType.I420)
    flat = np.frombuffer(buf, np.uint8)
    _, u, v = participant_colour(2)
    assert (flat[w * h: w * h + cw * ch] == u).all() and (flat[w * h + cw * ch:] == v).all()


def test_video_pattern_bar_moves_and_counter_changes():
    p = VideoPattern(640, 360, 30, index=0)
    x, y, bw, bh = p.counter_box
    assert (x, y) == (8, 8) and bw >= 6 * 40 and bh == 7 * 8 + 16  # six digits, 8x scale
    below = slice(y + bh, 360)
    cols = []
    for n in (0, 15, 30, 45):
        p.render(n)
        cols.append(int(np.argmax(p.y[below].mean(axis=0))))
    assert cols == sorted(cols) and cols[-1] - cols[0] > 640 // 2  # sweeps left to right
    p.render(60)  # one sweep is 2 s: frame 60 starts the next one
    assert int(np.argmax(p.y[below].mean(axis=0))) == cols[0]
    counters = []
    for n in (7, 8):
        p.render(n)
        counters.append(p.y[y: y + bh, x: x + bw].copy())
    assert (counters[0] != counters[1]).any()
    assert (counters[0] > 200).sum() > 0 and (counters[0] < 30).sum() > 0  # white digits on a dark box


def test_colours_of_a_few_participants_are_far_apart():
    uv = [participant_colour(i)[1:] for i in range(8)]
    assert min(np.hypot(a[0] - b[0], a[1] - b[1]) for a, b in itertools.combinations(uv, 2)) > 20
    with pytest.raises(ValueError):
        participant_colour(-1)


def test_audio_pattern_tone_and_beep():
    a = AudioPattern(index=1)
    assert len(a.frames) == 100 and all(f.samples_per_channel == 480 for f in a.frames)
    x = a.samples.astype(np.float64) / 32768
    beep, rest = x[: AUDIO_SAMPLE_RATE // 10], x[AUDIO_SAMPLE_RATE // 10:]
    assert np.sqrt(np.mean(beep ** 2)) > 2 * np.sqrt(np.mean(rest ** 2)) > 0.1
    assert abs(dominant_hz(rest[:24000]) - tone_hz(1)) < 3
    assert abs(dominant_hz(beep) - 1000) < 15


def test_frame_generation_is_cheap():
    for (w, h), budget in (((640, 360), 1e-3), ((1280, 720), 4e-3)):
        p = VideoPattern(w, h, 30, index=0)
        per_frame = min(timeit.repeat(lambda: p.render(123), number=100, repeat=3)) / 100
        assert per_frame < budget, (w, h, per_frame)


async def test_video_pacing_skips_late_frames_instead_of_bursting():
    pub = GeneratedPublisher("ws://unused", "unused", fps=50, audio=False)
    sent: list[tuple[float, int]] = []

    class StallingSource:  # stands in for rtc.VideoSource
        def capture_frame(self, frame, *, timestamp_us=0):
            sent.append((time.monotonic(), timestamp_us))
            if len(sent) == 5:
                time.sleep(0.2)  # the event loop is blocked for 10 frame periods

    pub._video_source = StallingSource()
    task = asyncio.create_task(pub._video_loop())
    await asyncio.sleep(0.6)
    task.cancel()
    times = np.array([t for t, _ in sent])
    stamps = np.array([ts for _, ts in sent]) / 1e6  # each frame's deadline
    slots = np.round((stamps - stamps[0]) / 0.02)
    assert np.allclose(stamps - stamps[0], slots * 0.02, atol=1e-5) and (np.diff(slots) >= 1).all()
    assert pub.frames_skipped >= 9 and slots[5] - slots[4] >= 10  # the stalled frames were skipped...
    late = times - stamps
    assert late.min() > -1e-3 and late.max() < 0.02, late  # ...and every frame went out in its own slot: no burst
    assert pub.frames_sent == len(sent)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        GeneratedPublisher("ws://x", "t", width=0)
    with pytest.raises(ValueError):
        GeneratedPublisher("ws://x", "t", video=False, audio=False)
    with pytest.raises(ValueError):
        GeneratedPublisher("ws://x", "t", index=-1)


def dominant_hz(x: np.ndarray, sample_rate: int = AUDIO_SAMPLE_RATE) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    spectrum[:5] = 0  # ignore DC
    return float(np.argmax(spectrum) * sample_rate / len(x))


# --- through a real livekit-server -----------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("lk") / "livekit-server.log"
    for attempt in range(3):
        # free ports are picked before the server binds them; on a busy machine another process
        # can take one first and the server exits: pick new ports and try again
        s = LiveKitServer(log_path=log)
        try:
            s.start()
            break
        except RuntimeError:
            if attempt == 2:
                raise
    try:
        yield s
    finally:
        s.stop()


def subscriber_token(server: LiveKitServer, room: str) -> str:
    grants = api.VideoGrants(room_join=True, room=room, can_publish=False, can_subscribe=True)
    return api.AccessToken(server.api_key, server.api_secret).with_identity("subscriber").with_grants(grants).to_jwt()


async def subscribe_all(server: LiveKitServer, room_name: str, expected: int) -> tuple[rtc.Room, dict]:
    """Join as a subscriber; wait until ``expected`` tracks are subscribed. Returns ``{(identity, kind): (track, sid)}``."""
    room = rtc.Room()
    tracks: dict[tuple[str, str], tuple[rtc.Track, str]] = {}
    complete = asyncio.Event()

    @room.on("track_subscribed")
    def _on(track: rtc.Track, publication: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant):
        kind = "video" if track.kind == rtc.TrackKind.KIND_VIDEO else "audio"
        tracks[(participant.identity, kind)] = (track, publication.sid)
        if len(tracks) >= expected:
            complete.set()

    await room.connect(server.url, subscriber_token(server, room_name))
    await asyncio.wait_for(complete.wait(), 10)
    return room, tracks


async def receive_video(track: rtc.Track, seconds: float) -> list[tuple[float, int, int, float, float, int]]:
    """Frames for ``seconds`` after the first one: ``(arrival s since first, w, h, mean U, mean V, bar column)``."""
    stream = rtc.VideoStream(track, format=rtc.VideoBufferType.I420)
    out = []
    t_first = None
    try:
        async with asyncio.timeout(seconds + 6):
            async for ev in stream:
                now = time.monotonic()
                t_first = t_first or now
                f = ev.frame
                w, h = f.width, f.height
                cw, ch = (w + 1) // 2, (h + 1) // 2
                flat = np.frombuffer(f.data, np.uint8)
                y = flat[: w * h].reshape(h, w)
                u = flat[w * h: w * h + cw * ch]
                v = flat[w * h + cw * ch: w * h + 2 * cw * ch]
                bar = int(np.argmax(y[h // 3:].mean(axis=0)))  # below the counter
                out.append((now - t_first, w, h, float(u.mean()), float(v.mean()), bar))
                if now - t_first >= seconds:
                    break
    finally:
        await stream.aclose()
    return out


async def receive_audio(track: rtc.Track, seconds: float, warm_up_s: float = 1.0) -> np.ndarray:
    """``seconds`` of mono 48 kHz int16 samples, after skipping the first ``warm_up_s``.

    While the receiver's jitter buffer settles it time-compresses the sound a little
    (tens of ms in the first second), hence the warm-up.
    """
    stream = rtc.AudioStream(track, sample_rate=AUDIO_SAMPLE_RATE, num_channels=1)
    chunks, n, skip = [], 0, int(warm_up_s * AUDIO_SAMPLE_RATE)
    try:
        async with asyncio.timeout(seconds + 6):
            async for ev in stream:
                x = np.frombuffer(ev.frame.data, np.int16)
                n += len(x)
                if n > skip:
                    chunks.append(x.copy())
                if n >= skip + seconds * AUDIO_SAMPLE_RATE:
                    break
    finally:
        await stream.aclose()
    return np.concatenate(chunks)


def tone_without_beeps(samples: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """A 0.5 s stretch of ``samples`` clear of beeps, and the 10 ms blocks where beeps were found."""
    x = samples.astype(np.float64) / 32768
    blocks = x[: len(x) // 480 * 480].reshape(-1, 480)
    rms = np.sqrt((blocks ** 2).mean(axis=1))
    loud = rms > 1.6 * np.median(rms)
    # a beep starts at a loud block with no loud block in the 300 ms before it (under load, a
    # received beep can come in pieces: concealment of late packets is quieter)
    recent = np.convolve(loud, np.ones(30), mode="full")[: len(loud)]  # loud blocks in [i-29, i]
    beeps = [int(i) for i in np.flatnonzero(loud) if i == 0 or recent[i - 1] == 0]
    near = np.convolve(loud, np.ones(7), mode="same") > 0  # loud, or within 30 ms of loud
    run = 0
    for i, bad in enumerate(near):
        run = 0 if bad else run + 1
        if run == 50:
            start = (i - 49) * 480
            return x[start: start + 24000], beeps
    raise AssertionError(f"no 0.5 s without beeps; block RMS {np.round(rms, 3).tolist()}")


async def test_two_publishers_seen_by_a_subscriber(server):
    room_name = f"pub-test-{uuid.uuid4().hex[:8]}"
    pubs = [GeneratedPublisher(server.url, participant_token(server.api_key, server.api_secret, room_name, f"pub-{i}"),
                               index=i) for i in range(2)]
    subscriber = None
    try:
        await asyncio.gather(*(p.start() for p in pubs))
        for p in pubs:
            assert set(p.track_sids) == {"video", "audio"}
            assert all(sid.startswith("TR_") for sid in p.track_sids.values())

        subscriber, tracks = await subscribe_all(server, room_name, 4)
        for i, p in enumerate(pubs):
            remote = subscriber.remote_participants[f"pub-{i}"]
            sources = {pub.sid: pub.source for pub in remote.track_publications.values()}
            assert sources == {p.track_sids["video"]: rtc.TrackSource.SOURCE_CAMERA,
                               p.track_sids["audio"]: rtc.TrackSource.SOURCE_MICROPHONE}
            assert tracks[(f"pub-{i}", "video")][1] == p.track_sids["video"]

        results = await asyncio.gather(
            *(receive_video(tracks[(f"pub-{i}", "video")][0], 3.0) for i in range(2)),
            *(receive_audio(tracks[(f"pub-{i}", "audio")][0], 2.0) for i in range(2)))
        videos, audios = results[:2], results[2:]

        colours = []
        for i, frames in enumerate(videos):
            window = [f for f in frames if 1.0 <= f[0] < 3.0]  # after a second of warm-up
            assert {(w, h) for _, w, h, *_ in window} == {(640, 360)}, f"pub-{i} sizes"
            fps = len(window) / 2.0
            assert 25 <= fps <= 32, f"pub-{i} received {fps} fps"
            u = float(np.median([f[3] for f in window]))
            v = float(np.median([f[4] for f in window]))
            colours.append((u, v))
            _, eu, ev = participant_colour(i)
            assert abs(u - eu) < 8 and abs(v - ev) < 8, (i, (u, v), (eu, ev))
            bars = [f[5] for f in window]
            assert max(bars) - min(bars) > 640 // 2, f"pub-{i} bar does not sweep: {bars}"
        assert np.hypot(colours[0][0] - colours[1][0], colours[0][1] - colours[1][1]) > 30, colours

        for i, samples in enumerate(audios):
            assert np.sqrt(np.mean((samples / 32768) ** 2)) > 0.05, f"pub-{i} audio is (nearly) silent"
            tone, beeps = tone_without_beeps(samples)
            assert len(beeps) >= 2, f"pub-{i}: beeps at blocks {beeps} in 2 s"
            # about one a second: the receiver's jitter buffer time-stretches the sound (a lot, under load)
            assert all(50 <= b - a <= 150 for a, b in zip(beeps, beeps[1:])), beeps
            assert abs(dominant_hz(tone) - tone_hz(i)) <= 10, (i, dominant_hz(tone))
    finally:
        if subscriber is not None:
            await subscriber.disconnect()
        await asyncio.gather(*(p.stop() for p in pubs))
    for p in pubs:
        await p.stop()  # idempotent


async def test_command_line_reports_ready_and_stops_on_sigterm(server, tmp_path):
    room_name = f"cli-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "publishers.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pyegress.devtools.publisher", "--url", server.url, "--api-key", server.api_key,
             "--api-secret", server.api_secret, "--room", room_name, "--count", "2", "--first-index", "3",
             "--width", "320", "--height", "180", "--fps", "15"],
            stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 20)
        assert line.strip() == "ready", log.read_text()[-2000:]
        async with api.LiveKitAPI(server.http_url, server.api_key, server.api_secret) as lk:
            listed = await lk.room.list_participants(api.ListParticipantsRequest(room=room_name))
        assert sorted(p.identity for p in listed.participants) == ["pub-3", "pub-4"]
        assert all(len(p.tracks) == 2 for p in listed.participants), [(p.identity, [(t.sid, t.source, t.mime_type) for t in p.tracks]) for p in listed.participants]
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 10) == 0, log.read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
