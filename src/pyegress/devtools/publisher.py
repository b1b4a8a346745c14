"""Generated LiveKit publishers: real participants with synthetic camera and microphone tracks.

For the demo, the tests and the benchmarks. Each publisher joins a real room
through the ``livekit`` rtc SDK and publishes

- video (``SOURCE_CAMERA``): I420 generated with numpy, default 640x360 at 30 fps.
  A flat background whose colour depends on the participant ``index`` (so the
  tiles of a composite can be told apart by their mean U/V), a bright vertical
  bar sweeping left to right once every 2 s, and a six-digit frame counter in
  the top-left corner (white on a dark box, 5x7 bitmap digits scaled 8x at 360p).
  The bar and the counter change luma only: every pixel's chroma is the
  participant's colour, see :func:`~pyegress.devtools.patterns.participant_colour`.
- audio (``SOURCE_MICROPHONE``): 48 kHz mono int16 in 10 ms frames, a continuous
  sine at :func:`~pyegress.devtools.patterns.tone_hz` (``300 + 100 * index`` Hz, peak 0.25 full scale) with
  a 100 ms 1 kHz beep (peak 0.7 full scale) at the start of every second.
- optionally a screen share (``SOURCE_SCREENSHARE``): a still presentation slide
  (:func:`~pyegress.devtools.patterns.slide`, 1280x800) at 5 fps.

Either track can be published muted (a camera or microphone turned off: livekit-server reports
the track muted), the camera can be left out (a participant on the phone), and each participant
can have a display name (the token's ``name``).

Both generators are paced against ``time.monotonic()``: frame ``n`` is due at
``t0 + n / fps`` and is sent at the start of its slot; a generator that wakes up
after the slot of its next frame is over skips to the current slot instead of
sending a burst, so at most one frame is sent per slot (the frame counter and
the tone phase follow the clock, so a skip shows as a jump). Audio is handed to
the SDK 30 ms ahead of its slot so the SDK's playout queue never runs dry.

Command line (prints ``ready`` on stdout once every publisher has published;
exits cleanly on SIGTERM/SIGINT)::

    python -m pyegress.devtools.publisher --url ws://127.0.0.1:7880 --api-key devkey \\
        --api-secret secret --room R --count 3 [--duration S] [--width W --height H --fps F] \
        [--first-index I] [--kind agent] [--codec h264] [--simulcast true] [--resize-every S] \
        [--names "Ada Lovelace,Борис"] [--audio-only 2] [--camera-off 1] [--mic-off 1] [--share 0]

``--first-index I`` numbers the publishers ``pub-I`` .. (identities, colours, tones), so a
second batch can join a room that already has ``pub-0``. ``--kind`` sets the participants'
kind in their tokens (``standard``, ``agent``, ...: LiveKit's ParticipantInfo.Kind). ``--names``
gives display names in publisher order; ``--audio-only``, ``--camera-off``, ``--mic-off`` and
``--share`` take comma-separated publisher indices.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Collection, Sequence

import jwt.warnings
from livekit import api, rtc

from .patterns import AUDIO_FRAME_SAMPLES, AUDIO_SAMPLE_RATE, AudioPattern, VideoPattern, slide

log = logging.getLogger(__name__)

_AUDIO_LEAD_S = 0.03  # audio is handed to the SDK this far ahead of real time, so its queue never runs dry
SHARE_PUBLISHED_SIZE = (1280, 800)
"""Size (px) of a generated screen share: 16:10, as laptop screens."""
SHARE_FPS = 5
"""Frame rate of a generated screen share: a still page, as screen capture sends one."""


def participant_token(api_key: str, api_secret: str, room: str, identity: str, kind: str = "standard",
                      name: str = "") -> str:
    """A LiveKit access token (JWT) that lets ``identity`` join ``room`` as a ``kind`` participant and
    publish, but not subscribe; ``name`` is the display name (default: the identity)."""
    grants = api.VideoGrants(room_join=True, room=room, can_publish=True, can_subscribe=False)
    return (api.AccessToken(api_key, api_secret).with_identity(identity).with_name(name or identity)
            .with_kind(kind).with_grants(grants).to_jwt())


class GeneratedPublisher:
    """A participant that joins a LiveKit room and publishes generated video and audio.

    Args:
        url: livekit-server ``ws://``/``wss://`` URL.
        token: an access token that may join and publish (see :func:`participant_token`).
        index: participant number >= 0; picks the colour (:func:`~.patterns.participant_colour`) and
            the tone (:func:`~.patterns.tone_hz`).
        width, height: video size in pixels (any positive size; 640x360 and 1280x720 are usual).
        fps: video frames per second.
        video, audio: which tracks to publish.
        codec: the video codec, ``vp8``, ``h264``, ``vp9`` or ``av1`` (``TrackPublishOptions.video_codec``).
        simulcast: publish three simulcast layers (as browsers do) instead of one.
        resize_every_s: if > 0, switch between ``width`` x ``height`` and half that size every this many
            seconds (the encoder starts a new keyframe at each switch; the counter goes on).
        camera_muted, mic_muted: publish the camera or microphone track muted (turned off).
        screen_share: also publish a screen share (:data:`SHARE_PUBLISHED_SIZE` at :data:`SHARE_FPS`).

    Raises:
        ValueError: a size, ``fps`` or ``index`` is out of range, or neither track is enabled.

    Use ``await start()`` / ``await stop()``, or ``async with``.
    """

    def __init__(self, url: str, token: str, *, index: int = 0, width: int = 640, height: int = 360,
                 fps: int = 30, video: bool = True, audio: bool = True, codec: str = "vp8",
                 simulcast: bool = False, resize_every_s: float = 0.0, camera_muted: bool = False,
                 mic_muted: bool = False, screen_share: bool = False) -> None:
        if not (video or audio or screen_share):
            raise ValueError("a publisher needs at least one track")
        if index < 0:
            raise ValueError(f"index must be >= 0, got {index}")
        self.url, self.token, self.index = url, token, index
        self.width, self.height, self.fps = width, height, fps
        if codec.upper() not in rtc.VideoCodec.keys():
            raise ValueError(f"unknown video codec {codec!r}")
        self.codec, self.simulcast, self.resize_every_s = codec.upper(), simulcast, resize_every_s
        self._video_pattern = VideoPattern(width, height, fps, index) if video else None
        self._small_pattern = VideoPattern(max(2, width // 2 & ~1), max(2, height // 2 & ~1), fps, index) \
            if video and resize_every_s > 0 else None
        self._audio_pattern = AudioPattern(index) if audio else None
        self.camera_muted, self.mic_muted, self.screen_share = camera_muted, mic_muted, screen_share
        self._share_source: rtc.VideoSource | None = None
        self.room: rtc.Room | None = None
        self._video_source: rtc.VideoSource | None = None
        self._audio_source: rtc.AudioSource | None = None
        self._sids: dict[str, str] = {}
        self._tasks: list[asyncio.Task] = []
        self._started = False
        self._stopped = False
        self._stop_lock = asyncio.Lock()
        self.frames_sent = 0
        """Video frames handed to the SDK so far."""
        self.frames_skipped = 0
        """Video frames skipped because the generator fell behind."""
        self.audio_frames_skipped = 0
        """10 ms audio frames skipped because the generator fell behind."""

    @property
    def track_sids(self) -> dict[str, str]:
        """SIDs of the published tracks: ``{"video": sid, "audio": sid, "share": sid}`` (only those published;
        empty before :meth:`start`)."""
        return dict(self._sids)

    async def start(self) -> None:
        """Connect, publish the tracks and start the generators; returns once every track is published.

        "Published" as the SDK reports it: livekit-server has accepted the tracks. The server
        lists them to others (RoomService, new subscribers) only once their media arrives,
        usually some tens of ms later; :func:`run_publishers` waits for that too.
        On failure or cancellation everything started so far is torn down again.

        Raises:
            RuntimeError: the publisher was already started.
            livekit.rtc.ConnectError: the room cannot be joined (bad URL or token).
            livekit.rtc.PublishTrackError: the server refused a track (e.g. no publish permission).
        """
        if self._started:
            raise RuntimeError("GeneratedPublisher.start() may be called only once")
        self._started = True
        loop = asyncio.get_running_loop()
        try:
            self.room = rtc.Room(loop=loop)
            await self.room.connect(self.url, self.token, rtc.RoomOptions(auto_subscribe=False))
            lp = self.room.local_participant
            if self._video_pattern is not None:
                self._video_source = rtc.VideoSource(self.width, self.height)
                track = rtc.LocalVideoTrack.create_video_track("generated-video", self._video_source)
                # explicit encoding: with the SDK's defaults a 640x360 track arrives at only 20-25 fps
                # (its 360p preset caps the frame rate); one fixed layer unless simulcast is asked for,
                # no adaptation, so subscribers always get the configured size and rate.
                options = rtc.TrackPublishOptions(
                    source=rtc.TrackSource.SOURCE_CAMERA,
                    simulcast=self.simulcast,
                    video_codec=rtc.VideoCodec.Value(self.codec),
                    video_encoding=rtc.VideoEncoding(
                        max_bitrate=max(300_000, int(0.1 * self.width * self.height * self.fps)),
                        max_framerate=float(self.fps)),
                    degradation_preference=rtc.DegradationPreference.MAINTAIN_FRAMERATE_AND_RESOLUTION,
                )
                self._tasks.append(self._spawn(self._video_loop(), "video"))
                pub = await lp.publish_track(track, options)
                self._sids["video"] = pub.sid
                if self.camera_muted:
                    track.mute()
            if self._audio_pattern is not None:
                self._audio_source = rtc.AudioSource(AUDIO_SAMPLE_RATE, 1, queue_size_ms=200, loop=loop)
                track = rtc.LocalAudioTrack.create_audio_track("generated-audio", self._audio_source)
                options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE, dtx=False)
                self._tasks.append(self._spawn(self._audio_loop(), "audio"))
                pub = await lp.publish_track(track, options)
                self._sids["audio"] = pub.sid
                if self.mic_muted:
                    track.mute()
            if self.screen_share:
                self._share_source = rtc.VideoSource(*SHARE_PUBLISHED_SIZE, is_screencast=True)
                track = rtc.LocalVideoTrack.create_video_track("generated-share", self._share_source)
                options = rtc.TrackPublishOptions(
                    source=rtc.TrackSource.SOURCE_SCREENSHARE, simulcast=False,
                    video_codec=rtc.VideoCodec.Value(self.codec),
                    video_encoding=rtc.VideoEncoding(max_bitrate=1_000_000, max_framerate=float(SHARE_FPS)))
                self._tasks.append(self._spawn(self._share_loop(), "share"))
                pub = await lp.publish_track(track, options)
                self._sids["share"] = pub.sid
        except BaseException:
            await self.stop()
            raise
        log.info("publisher %d published %s", self.index, self._sids)

    async def stop(self) -> None:
        """Stop the generators, unpublish, disconnect and release the sources. Idempotent; never raises for teardown errors."""
        async with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            room = self.room
            if room is not None and room.isconnected():
                for kind, sid in self._sids.items():
                    try:
                        await asyncio.wait_for(room.local_participant.unpublish_track(sid), 5)
                    except Exception as e:  # the server may already be gone
                        log.warning("publisher %d: unpublishing %s track %s failed: %s", self.index, kind, sid, e)
                try:
                    await asyncio.wait_for(room.disconnect(), 5)
                except Exception as e:
                    log.warning("publisher %d: disconnect failed: %s", self.index, e)
            for source in (self._video_source, self._audio_source, self._share_source):
                if source is not None:
                    await source.aclose()

    async def __aenter__(self) -> "GeneratedPublisher":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _spawn(self, coro, kind: str) -> asyncio.Task:
        task = asyncio.create_task(coro, name=f"publisher-{self.index}-{kind}")

        def done(t: asyncio.Task) -> None:
            if not t.cancelled() and t.exception() is not None:
                log.error("publisher %d: %s generator failed", self.index, kind, exc_info=t.exception())

        task.add_done_callback(done)
        return task

    async def _video_loop(self) -> None:
        source = self._video_source
        patterns = [p for p in (self._video_pattern, self._small_pattern) if p is not None]
        assert patterns and source is not None
        period = 1.0 / self.fps
        per_size = round(self.resize_every_s * self.fps) or None  # frames before each size switch
        t0 = time.monotonic()
        n = 0
        while True:
            delay = t0 + n * period - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            due = int((time.monotonic() - t0) / period)  # the frame whose slot is now
            if due > n:  # frame n's slot is over: skip to the current one, never send a burst
                self.frames_skipped += due - n
                n = due
            pattern = patterns[n // per_size % 2] if per_size else patterns[0]
            pattern.render(n)
            source.capture_frame(pattern.frame, timestamp_us=int((t0 + n * period) * 1e6))
            self.frames_sent += 1
            n += 1

    async def _share_loop(self) -> None:
        data, width, height = slide(*SHARE_PUBLISHED_SIZE)
        frame = rtc.VideoFrame(width, height, rtc.VideoBufferType.I420, data)
        t0 = time.monotonic()
        n = 0
        while True:
            n = max(n + 1, int((time.monotonic() - t0) * SHARE_FPS))  # skips, never bursts, when late
            self._share_source.capture_frame(frame, timestamp_us=int((t0 + n / SHARE_FPS) * 1e6))
            await asyncio.sleep(max(0.0, t0 + (n + 1) / SHARE_FPS - time.monotonic()))

    async def _audio_loop(self) -> None:
        pattern, source = self._audio_pattern, self._audio_source
        assert pattern is not None and source is not None
        block = AUDIO_FRAME_SAMPLES / AUDIO_SAMPLE_RATE
        frames = pattern.frames
        t0 = time.monotonic()
        k = 0
        while True:
            delay = t0 + k * block - _AUDIO_LEAD_S - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            due = int((time.monotonic() - t0) / block)  # the block that should be playing now
            if due > k:  # the lead is used up and more: skip to the present, never send a burst
                self.audio_frames_skipped += due - k
                k = due
            await source.capture_frame(frames[k % len(frames)])
            k += 1


async def run_publishers(url: str, api_key: str, api_secret: str, room: str, count: int,
                         duration_s: float | None = None, *, width: int = 640, height: int = 360, fps: int = 30,
                         first_index: int = 0, kind: str = "standard", names: Sequence[str] = (),
                         audio_only: Collection[int] = (), camera_off: Collection[int] = (),
                         mic_off: Collection[int] = (), share: Collection[int] = (),
                         on_ready: Callable[[list[GeneratedPublisher]], None] | None = None,
                         **options) -> None:
    """Run ``count`` generated publishers in ``room`` for ``duration_s`` seconds, or until cancelled.

    Identities are ``pub-{i}`` (participants of ``kind``) and indices (colour, tone) ``i`` for ``i`` in
    ``first_index .. first_index + count - 1`` (``first_index`` lets a second batch join
    the same room without clashing). They start concurrently; ``on_ready(publishers)`` is
    called once all have published and livekit-server lists every one of their tracks
    (RoomService ``ListParticipants``), so a participant joining from then on sees them all.
    ``duration_s`` counts from then. Every publisher is stopped on return, error or cancellation.
    ``names[k]`` is the display name of the ``k``-th publisher (default: its identity); the publishers whose
    indices are in ``audio_only`` publish no camera, in ``camera_off`` / ``mic_off`` their camera /
    microphone muted, in ``share`` a screen share too. ``options`` go to every :class:`GeneratedPublisher`
    (``codec``, ``simulcast``, ``resize_every_s``).

    Raises:
        ValueError: ``count`` < 1, ``first_index`` < 0, ``duration_s`` negative, or a bad size/fps.
        livekit.rtc.ConnectError, livekit.rtc.PublishTrackError: a publisher could not start.
        TimeoutError: the server did not list all tracks within 10 s of their publication.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if first_index < 0:
        raise ValueError(f"first_index must be >= 0, got {first_index}")
    if duration_s is not None and duration_s < 0:
        raise ValueError(f"duration_s must be >= 0, got {duration_s}")
    indices = range(first_index, first_index + count)
    pubs = [
        GeneratedPublisher(url, participant_token(api_key, api_secret, room, f"pub-{i}", kind,
                                                  names[k] if k < len(names) else ""),
                           index=i, width=width, height=height, fps=fps, video=i not in audio_only,
                           camera_muted=i in camera_off, mic_muted=i in mic_off, screen_share=i in share, **options)
        for k, i in enumerate(indices)
    ]
    try:
        starts = [asyncio.create_task(p.start()) for p in pubs]
        try:
            await asyncio.gather(*starts)
        except BaseException:
            for t in starts:
                t.cancel()
            await asyncio.gather(*starts, return_exceptions=True)
            raise
        await _wait_until_listed(url, api_key, api_secret, room,
                                 {f"pub-{p.index}": set(p.track_sids.values()) for p in pubs})
        if on_ready is not None:
            on_ready(pubs)
        if duration_s is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(duration_s)
    finally:
        await asyncio.gather(*(p.stop() for p in pubs), return_exceptions=True)


async def _wait_until_listed(url: str, api_key: str, api_secret: str, room: str, want: dict[str, set[str]],
                             timeout_s: float = 10.0) -> None:
    """Poll RoomService until every identity in ``want`` is listed with (at least) its track SIDs.

    Raises:
        TimeoutError: not so after ``timeout_s`` seconds.
    """
    deadline = time.monotonic() + timeout_s
    async with api.LiveKitAPI(url, api_key, api_secret) as lk:
        while True:
            listed = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
            have = {p.identity: {t.sid for t in p.tracks} for p in listed.participants}
            missing = {who: sids - have.get(who, set()) for who, sids in want.items() if sids - have.get(who, set())}
            if not missing:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"livekit-server does not list these published tracks after {timeout_s} s: {missing}")
            await asyncio.sleep(0.05)


def _print_ready(_pubs: list[GeneratedPublisher]) -> None:
    try:
        print("ready", flush=True)
    except (BrokenPipeError, ValueError):  # nobody is listening any more
        pass


async def _main(args: argparse.Namespace) -> None:
    run = asyncio.ensure_future(run_publishers(
        args.url, args.api_key, args.api_secret, args.room, args.count, args.duration,
        width=args.width, height=args.height, fps=args.fps, first_index=args.first_index, kind=args.kind,
        names=args.names, audio_only=args.audio_only, camera_off=args.camera_off, mic_off=args.mic_off,
        share=args.share, on_ready=_print_ready, codec=args.codec, simulcast=args.simulcast,
        resize_every_s=args.resize_every))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, run.cancel)
    try:
        await run
    except asyncio.CancelledError:
        if not run.cancelled():
            raise
        log.info("stopped by signal")


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status (0 also after SIGTERM/SIGINT)."""
    from .livekit_server import DEV_API_KEY, DEV_API_SECRET

    p = argparse.ArgumentParser(prog="python -m pyegress.devtools.publisher", description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default="ws://127.0.0.1:7880", help="livekit-server URL")
    p.add_argument("--api-key", default=DEV_API_KEY)
    p.add_argument("--api-secret", default=DEV_API_SECRET)
    p.add_argument("--room", required=True)
    p.add_argument("--count", type=int, default=1, help="number of publishers")
    p.add_argument("--duration", type=float, default=None, help="seconds to run (default: until signalled)")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--first-index", type=int, default=0, help="index/identity number of the first publisher")
    p.add_argument("--kind", default="standard", help="participant kind in the tokens (standard, agent, ...)")
    p.add_argument("--codec", default="vp8", help="video codec: vp8, h264, vp9 or av1")
    p.add_argument("--simulcast", type=lambda v: v.lower() in ("1", "true", "yes"), default=False,
                   help="publish three simulcast layers (true/false)")
    p.add_argument("--resize-every", type=float, default=0.0,
                   help="switch between the size and half of it every this many seconds (0: never)")
    p.add_argument("--names", type=_names, default=(), help="display names, comma-separated, in publisher order")
    for flag, what in (("audio-only", "publish no camera"), ("camera-off", "publish the camera muted"),
                       ("mic-off", "publish the microphone muted"), ("share", "also publish a screen share")):
        p.add_argument(f"--{flag}", type=_indices, default=frozenset(),
                       help=f"comma-separated publisher indices that {what}")
    args = p.parse_args(argv)
    # livekit-server --dev uses the 6-byte secret "secret", which PyJWT warns about on every token.
    warnings.filterwarnings("ignore", category=jwt.warnings.InsecureKeyLengthWarning)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(_main(args))
    except ValueError as e:
        p.error(str(e))
    return 0


def _names(value: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in value.split(","))


def _indices(value: str) -> frozenset[int]:
    return frozenset(int(i) for i in value.split(",") if i.strip())


def _exit_now(status: int) -> None:
    """Flush and leave the process at once, skipping interpreter teardown and ``atexit``.

    livekit 1.2.1's native library sometimes aborts the process (SIGABRT, "panic in a
    function that cannot unwind" in a tokio worker) when the SDK's ``atexit`` hook disposes
    it while rooms that were just disconnected are still being torn down in its threads.
    By now every publisher has been stopped, so nothing is lost by not disposing.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


if __name__ == "__main__":
    try:
        _status = main()
    except SystemExit as e:  # argparse errors (already printed)
        _status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        traceback.print_exc()
        _status = 1
    _exit_now(_status)
