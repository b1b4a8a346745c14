"""Web egress end to end: real Chromium rendering a page served on loopback, a real ``pyegress serve``,
``livekit-api``'s own client; checked as a user would (ffprobe, the animation in the pictures, the tone)."""

from __future__ import annotations

import asyncio
import functools
import http.server
import shutil
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import psutil
import pytest
from livekit import api

from conftest import wait_status
from media_checks import av_offsets_s, bar_phases, dominant_hz, frame_at, frame_chroma
from pyegress.devtools.process import free_port
from support.media_file import write_publisher_webm
from pyegress.devtools.probe import ffprobe
from test_admission_e2e import wait_admitted
from test_egress_types_e2e import ENDED, S, parse_playlist, run_egress

PAGE_DIR = Path(__file__).parent / "web"
TONE_HZ = 660


class _PageServer(http.server.ThreadingHTTPServer):
    """Serves ``directory`` on a free loopback port and remembers every requested path (with query)."""

    def __init__(self, directory: Path) -> None:
        self.requests: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args) -> None:
                server.requests.append(self.path)

        super().__init__(("127.0.0.1", 0), functools.partial(Handler, directory=str(directory)))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """``tests/web`` and a generated ``sync.webm``, served on loopback."""
    directory = tmp_path_factory.mktemp("pages")
    for page in PAGE_DIR.iterdir():
        shutil.copy(page, directory)
    write_publisher_webm(directory / "sync.webm", seconds=12)
    server = _PageServer(directory)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def animation_lag_s(path) -> list[float]:
    """How far each picture's sweeping bar is from where steady motion puts it, in s (median removed).

    The test page's bar crosses the frame every 2 s; a recording whose pictures move with its own
    timeline (not frozen, not sped up or slowed down) shows the bar at ``t / 2 + constant`` (mod 1).
    """
    phases = bar_phases(path, bar_period_s=2.0, skip_s=0.5)
    offsets = np.array([(p - t / 2) % 1.0 for t, p in phases])
    ref = offsets[len(offsets) // 2]
    wrapped = (offsets - ref + 0.5) % 1.0 - 0.5  # circular: the bar wraps from the right edge to the left
    return list((wrapped - np.median(wrapped)) * 2.0)


async def test_web_egress_to_mp4_records_the_page_picture_and_sound(egress_api, pages):
    url = f"{pages.url}/page.html?tone={TONE_HZ}"
    start = egress_api.egress.start_web_egress(api.WebEgressRequest(
        url=url, advanced=api.EncodingOptions(width=640, height=360, framerate=30),
        file_outputs=[api.EncodedFileOutput(filepath="web/page.mp4")]))
    final, seconds = await run_egress(egress_api, start, 4)

    assert final.source_type == api.EgressSourceType.EGRESS_SOURCE_TYPE_WEB
    assert final.WhichOneof("request") == "web" and final.web.url == url and final.room_name == ""
    path = final.file_results[0].location
    probe = ffprobe(path)
    v, a = probe.stream("video"), probe.stream("audio")
    assert (v["codec_name"], v["width"], v["height"], round(probe.video_fps, 2)) == ("h264", 640, 360, 30.0)
    assert (a["codec_name"], int(a["sample_rate"])) == ("aac", 48000)
    assert abs(probe.duration - seconds) <= 0.5
    assert abs(final.file_results[0].duration / 1e9 - probe.duration) <= 0.1

    # The picture is the page, animating with the recording's timeline: the bar moves on from picture
    # to picture (many different positions), neither frozen nor running fast or slow. Pictures lag a
    # little behind steady motion when Chromium gets too little CPU (2 busy cores: screencast at ~10 fps).
    phases = bar_phases(path, skip_s=0.5)
    assert len({round(p, 2) for _, p in phases}) >= 5 * (seconds - 0.5), "the page's animation was not recorded"
    lags = np.abs(animation_lag_s(path))
    assert np.median(lags) <= 0.15 and np.percentile(lags, 90) <= 0.4, lags
    # The sound is the page's WebAudio oscillator.
    assert abs(dominant_hz(path, 1.0, 2.0) - TONE_HZ) <= 5


async def test_await_start_signal_starts_and_end_signal_ends(egress_api, pages):
    """The page logs START_RECORDING 2 s after loading and END_RECORDING 3 s later: recording covers
    exactly that span, so its first picture already shows the started page (blue, not grey)."""
    t_request = time.time_ns()
    info = await egress_api.egress.start_web_egress(api.WebEgressRequest(
        url=f"{pages.url}/page.html?start_after=2&end_after=3", await_start_signal=True, video_only=True,
        advanced=api.EncodingOptions(width=640, height=360), file_outputs=[api.EncodedFileOutput(filepath="web/signal")]))
    assert info.status == S.EGRESS_STARTING and info.web.await_start_signal
    final, _ = await wait_status(egress_api, info.egress_id, lambda i: i.status in ENDED, timeout_s=60)
    assert final.status == S.EGRESS_COMPLETE, final.error
    assert final.started_at - t_request >= 2e9  # not before the signal
    path = final.file_results[0].location
    assert path.endswith("web/signal.mp4")
    probe = ffprobe(path)
    assert probe.stream("audio") is None
    assert abs(probe.duration - 3.0) <= 0.5
    u, v = frame_chroma(frame_at(path, 0.0), 640, 360)
    assert u > 150 and v < 125, (u, v)  # blue; the grey before the signal has u = v = 128


async def test_stop_before_the_start_signal_aborts_the_egress(egress_api, pages, egress_server):
    info = await egress_api.egress.start_web_egress(api.WebEgressRequest(
        url=f"{pages.url}/page.html", await_start_signal=True, audio_only=True,
        file_outputs=[api.EncodedFileOutput(filepath="web/never.ogg")]))
    await egress_api.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
    final, _ = await wait_status(egress_api, info.egress_id, lambda i: i.status in ENDED)
    # LiveKit's SetAborted(MsgStoppedBeforeStarted): nothing recorded, nothing claims success
    assert final.status == S.EGRESS_ABORTED, final
    assert (final.error, final.error_code) == ("Stop called before pipeline could start", 412)
    assert final.details == "End reason: StopEgress API" and not final.file_results
    assert not (egress_server.recordings_dir / "web/never.ogg").exists()


async def test_web_egress_rejects_bad_urls_and_reports_unreachable_pages(egress_api):
    outputs = [api.EncodedFileOutput(filepath="web/bad.mp4")]
    for url in ("", "ftp://127.0.0.1/page.html", "file:///etc/passwd", "javascript:alert(1)"):
        with pytest.raises(api.TwirpError) as e:
            await egress_api.egress.start_web_egress(api.WebEgressRequest(url=url, file_outputs=outputs))
        assert e.value.code == "invalid_argument" and "url" in e.value.message, (url, e.value.message)
    with pytest.raises(api.TwirpError) as e:
        await egress_api.egress.start_egress(api.StartEgressRequest(
            web=api.WebSource(url="chrome://settings"), outputs=[api.Output(file=api.FileOutput(filepath="w.mp4"))]))
    assert e.value.code == "invalid_argument" and "web.url" in e.value.message

    # a well-formed URL nobody serves: the egress fails with the browser's reason
    info = await egress_api.egress.start_web_egress(api.WebEgressRequest(url=f"http://127.0.0.1:{free_port()}/",
                                                                        file_outputs=outputs))
    final, _ = await wait_status(egress_api, info.egress_id, lambda i: i.status in ENDED)
    assert final.status == S.EGRESS_FAILED and "ERR_CONNECTION_REFUSED" in final.error, final.error


async def test_unified_start_egress_web_source_to_hls_and_images(egress_api, egress_server, pages):
    start = egress_api.egress.start_egress(api.StartEgressRequest(
        web=api.WebSource(url=f"{pages.url}/page.html?tone={TONE_HZ}"),
        advanced=api.EncodingOptions(width=640, height=360),
        outputs=[api.Output(segments=api.SegmentedFileOutput(filename_prefix="web/hls/page", segment_duration=2)),
                 api.Output(images=api.ImageOutput(capture_interval=1, filename_prefix="web/img/page"))]))
    final, seconds = await run_egress(egress_api, start, 5)
    assert final.WhichOneof("request") == "egress" and final.egress.web.url.startswith(pages.url)
    assert final.source_type == api.EgressSourceType.EGRESS_SOURCE_TYPE_WEB

    (seg,) = final.segment_results
    tags, entries = parse_playlist(Path(seg.playlist_location).read_text())
    assert "#EXT-X-ENDLIST" in tags and len(entries) == seg.segment_count >= 2
    assert abs(sum(d for d, _ in entries) - seconds) <= 0.5
    first = Path(seg.playlist_location).parent / entries[0][1]
    segment = ffprobe(first)
    assert (segment.stream("video")["codec_name"], segment.stream("audio")["codec_name"]) == ("h264", "aac")

    (img,) = final.image_results
    images = sorted((egress_server.recordings_dir / "web/img").glob("page_*.jpeg"))
    assert len(images) == img.image_count >= seconds - 1
    pictures = [frame_at(p, 0.0)[:360] for p in images]  # luma planes of successive thumbnails
    assert any(np.abs(a.astype(int) - b).mean() > 1 for a, b in zip(pictures, pictures[1:]))  # the bar moved


async def test_room_composite_custom_base_url_renders_the_template(livekit, lkapi, egress_api, egress_server, pages,
                                                                  room_name):
    """A room composite with ``custom_base_url`` loads that page with LiveKit's template parameters:
    ``url`` (the LiveKit server), ``token`` (a hidden recorder's token for the room) and ``layout``;
    like LiveKit's templates, the page starts the recording with START_RECORDING."""
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))

    async def relayout(active):  # the page lays itself out: UpdateLayout is stored, the recording goes on
        info = await egress_api.egress.update_layout(api.UpdateLayoutRequest(egress_id=active.egress_id,
                                                                              layout="grid"))
        assert info.room_composite.layout == "grid"

    start = egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
        room_name=room_name, layout="speaker", custom_base_url=f"{pages.url}/page.html?start_after=0.5",
        advanced=api.EncodingOptions(width=640, height=360), audio_only=False,
        file_outputs=[api.EncodedFileOutput(filepath="web/{room_name}-template.mp4")]))
    final, seconds = await run_egress(egress_api, start, 3, during=relayout)
    assert final.WhichOneof("request") == "room_composite" and final.room_composite.custom_base_url
    assert final.source_type == api.EgressSourceType.EGRESS_SOURCE_TYPE_WEB and final.room_id

    (loaded,) = [p for p in pages.requests if p.startswith("/page.html?start_after=0.5&")]
    query = {k: v[0] for k, v in parse_qs(urlsplit(loaded).query).items()}
    assert query["layout"] == "speaker" and query["url"].startswith("ws://")
    claims = api.TokenVerifier(livekit.api_key, livekit.api_secret).verify(query["token"])
    assert claims.video.room == room_name and claims.video.room_join and claims.video.hidden
    assert claims.video.recorder and not claims.video.can_publish
    assert query["token"] not in (egress_server.workdir / "logs" / f"{final.egress_id}.log").read_text()

    # a template nobody serves: the failure names the page, with its token masked. The first egress holds its
    # cores until its handler has closed Chromium and exited, which on two cores leaves too few for a second
    info = await wait_admitted(egress_api, api.RoomCompositeEgressRequest(
        room_name=room_name, custom_base_url=f"http://127.0.0.1:{free_port()}/template",
        file_outputs=[api.EncodedFileOutput(filepath="web/{room_name}-down.mp4")]), timeout_s=30)
    failed, _ = await wait_status(egress_api, info.egress_id, lambda i: i.status in ENDED)
    assert failed.status == S.EGRESS_FAILED and "ERR_CONNECTION_REFUSED" in failed.error
    assert "token=****" in failed.error and "token=ey" not in failed.error
    assert abs(ffprobe(final.file_results[0].location).duration - seconds) <= 0.5


def _web_worker(egress_server) -> tuple[psutil.Process, list[psutil.Process]]:
    """The running web egress worker of ``pyegress serve`` and its Chromium/PulseAudio descendants."""
    for worker in psutil.Process(egress_server.pid).children():
        if "pyegress.handler" in " ".join(worker.cmdline()):
            helpers = [p for p in worker.children(recursive=True) if p.name() in ("chromium", "pulseaudio", "parec")]
            if helpers:
                return worker, helpers
    raise AssertionError("no web egress worker with Chromium found")


async def test_chromium_dying_fails_the_egress_and_keeps_the_file(egress_api, egress_server, pages):
    start = egress_api.egress.start_web_egress(api.WebEgressRequest(
        url=f"{pages.url}/page.html?tone={TONE_HZ}", advanced=api.EncodingOptions(width=640, height=360),
        file_outputs=[api.EncodedFileOutput(filepath="web/crash.mp4")]))
    info = await start
    await wait_status(egress_api, info.egress_id, lambda i: i.status == S.EGRESS_ACTIVE)
    await asyncio.sleep(2)
    _, helpers = _web_worker(egress_server)
    next(p for p in helpers if p.name() == "chromium" and p.parent().name() != "chromium").kill()
    final, _ = await wait_status(egress_api, info.egress_id, lambda i: i.status in ENDED)
    assert final.status == S.EGRESS_FAILED and "chromium exited" in final.error, final.error
    probe = ffprobe(final.file_results[0].location)  # what was recorded until then is a playable file
    assert probe.stream("video")["codec_name"] == "h264" and 1.5 <= probe.duration <= 4


async def test_a_killed_worker_leaves_no_browser_behind(egress_api, egress_server, pages):
    info = await egress_api.egress.start_web_egress(api.WebEgressRequest(
        url=f"{pages.url}/page.html?tone={TONE_HZ}", file_outputs=[api.EncodedFileOutput(filepath="web/killed.mp4")]))
    await wait_status(egress_api, info.egress_id, lambda i: i.status == S.EGRESS_ACTIVE)
    worker, helpers = _web_worker(egress_server)
    assert {p.name() for p in helpers} >= {"chromium", "pulseaudio", "parec"}
    worker.kill()
    final, _ = await wait_status(egress_api, info.egress_id, lambda i: i.status in ENDED)
    assert final.status == S.EGRESS_FAILED
    _, alive = psutil.wait_procs(helpers, timeout=10)
    assert not alive, [p.name() for p in alive]
    # its temporary profile goes when the next web egress starts
    stale = list(Path(tempfile.gettempdir()).glob(f"pyegress-web-{worker.pid}-*"))
    assert stale
    info = await egress_api.egress.start_web_egress(api.WebEgressRequest(
        url=f"{pages.url}/page.html", audio_only=True, file_outputs=[api.EncodedFileOutput(filepath="web/next.ogg")]))
    await wait_status(egress_api, info.egress_id, lambda i: i.status == S.EGRESS_ACTIVE)
    assert not any(p.exists() for p in stale)
    await asyncio.sleep(1)
    await egress_api.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
    final, _ = await wait_status(egress_api, info.egress_id, lambda i: i.status in ENDED)
    assert final.status == S.EGRESS_COMPLETE and ffprobe(final.file_results[0].location).stream("audio")


async def test_a_playing_video_is_recorded_with_sound_and_picture_in_sync(egress_api, pages):
    """The page plays a video whose sound beeps when its bar passes a one-second mark (Chromium keeps a
    media element's sound and picture together); the recording must keep them together too."""
    start = egress_api.egress.start_web_egress(api.WebEgressRequest(
        url=f"{pages.url}/video.html", advanced=api.EncodingOptions(width=640, height=360),
        file_outputs=[api.EncodedFileOutput(filepath="web/video.mp4")]))
    final, _ = await run_egress(egress_api, start, 8)
    offsets = av_offsets_s(final.file_results[0].location)
    assert len(offsets) >= 4, offsets
    # ITU-R BT.1359 detectability: 45 ms sound early to 125 ms late; measured here ~25 ms late, steady
    assert -0.045 <= float(np.median(offsets)) <= 0.090, offsets
    half = len(offsets) // 2
    assert abs(float(np.median(offsets[half:])) - float(np.median(offsets[:half]))) <= 0.040, offsets
