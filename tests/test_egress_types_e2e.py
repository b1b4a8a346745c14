"""Every composite egress type and output kind end to end: real livekit-server, generated publishers,
livekit-api's own client; checked the way a user would (ffprobe, the playlist, the pictures, the sound)."""

from __future__ import annotations

import asyncio
import math
import re
import time
from pathlib import Path

import numpy as np
import pytest
from livekit import api

from conftest import wait_status
from media_checks import distinct_colours, dominant_hz, frame_at, frame_chroma, tile_chroma
from pyegress.devtools.probe import ffprobe
from pyegress.devtools.patterns import participant_colour, tone_hz

S = api.EgressStatus
ENDED = (S.EGRESS_COMPLETE, S.EGRESS_FAILED, S.EGRESS_ABORTED, S.EGRESS_LIMIT_REACHED)


async def run_egress(egress_api, start, seconds: float, during=None):
    """Start with the coroutine ``start``, record ``seconds`` (calling ``during(info)`` half-way), stop, wait."""
    info = await start
    active, _ = await wait_status(egress_api, info.egress_id, lambda i: i.status in (S.EGRESS_ACTIVE, *ENDED))
    assert active.status == S.EGRESS_ACTIVE, active.error
    await asyncio.sleep(seconds / 2)
    if during is not None:
        await during(active)
    await asyncio.sleep(seconds / 2)
    t_stop_ns = time.time_ns()
    await egress_api.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
    final, _ = await wait_status(egress_api, info.egress_id, lambda i: i.status in ENDED)
    assert final.status == S.EGRESS_COMPLETE, final.error
    return final, (t_stop_ns - active.started_at) / 1e9


def parse_playlist(text: str) -> tuple[dict[str, str], list[tuple[float, str]]]:
    tags, entries, duration = {}, [], None
    for line in text.splitlines():
        if line.startswith("#EXTINF:"):
            duration = float(line[8:].split(",")[0])
        elif line.startswith("#EXT"):
            key, _, value = line.partition(":")
            tags[key] = value
        elif line.strip():
            entries.append((duration, line.strip()))
    return tags, entries


async def test_file_segments_and_images_from_one_egress(lkapi, egress_api, publishers, room_name, egress_server):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 2)
    progress = {}

    async def check_progress(active):
        await asyncio.sleep(1.5)
        (info,) = (await egress_api.egress.list_egress(api.ListEgressRequest(egress_id=active.egress_id))).items
        progress.update(updated_at=info.updated_at, size=info.file_results[0].size,
                        duration=info.file_results[0].duration, segments=info.segment_results[0].segment_count)

    start = egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
        room_name=room_name,
        file_outputs=[api.EncodedFileOutput(filepath="multi/{room_name}.mp4")],
        segment_outputs=[api.SegmentedFileOutput(filename_prefix="multi/hls/{room_name}", segment_duration=2,
                                                 live_playlist_name="live.m3u8")],
        image_outputs=[api.ImageOutput(capture_interval=2, width=320, height=180, filename_prefix="multi/img/thumb")]))
    final, seconds = await run_egress(egress_api, start, 9, during=check_progress)

    # progress was reported while recording: sizes and durations grow, updated_at moves
    assert progress["size"] > 0 and progress["duration"] > 2e9 and progress["segments"] >= 1
    assert final.updated_at > progress["updated_at"]

    (file_result,) = final.file_results
    probe = ffprobe(file_result.location)
    assert abs(probe.duration - seconds) <= 0.5

    (seg,) = final.segment_results
    assert seg.playlist_name == f"multi/hls/{room_name}.m3u8" and seg.live_playlist_name == "multi/hls/live.m3u8"
    tags, entries = parse_playlist(Path(seg.playlist_location).read_text())
    assert tags["#EXT-X-PLAYLIST-TYPE"] == "EVENT" and "#EXT-X-ENDLIST" in tags
    assert int(tags["#EXT-X-TARGETDURATION"]) == 2 and tags["#EXT-X-MEDIA-SEQUENCE"] == "0"
    assert len(entries) == seg.segment_count == math.ceil(seconds / 2 - 0.01)
    frame = 1 / 30
    for i, (extinf, name) in enumerate(entries):
        assert re.fullmatch(re.escape(room_name) + r"_\d{5}\.ts", name) and name.endswith(f"{i:05d}.ts")
        if i < len(entries) - 1:
            assert abs(extinf - 2.0) <= frame + 1e-3, (name, extinf)
        segment = ffprobe(Path(seg.playlist_location).parent / name)  # each segment decodes on its own
        assert segment.stream("video")["codec_name"] == "h264" and segment.stream("audio")["codec_name"] == "aac"
        assert abs(segment.duration - extinf) <= 0.1
    assert abs(sum(d for d, _ in entries) - seconds) <= 0.5
    assert abs(seg.duration / 1e9 - sum(d for d, _ in entries)) <= 0.01
    live_tags, live_entries = parse_playlist(Path(seg.live_playlist_location).read_text())
    assert "#EXT-X-PLAYLIST-TYPE" not in live_tags and live_entries == entries[-len(live_entries):]
    assert int(live_tags["#EXT-X-MEDIA-SEQUENCE"]) == len(entries) - len(live_entries)

    (img,) = final.image_results
    assert img.filename_prefix == "multi/img/thumb"
    images = sorted((egress_server.recordings_dir / "multi/img").glob("thumb_*.jpeg"))
    assert len(images) == img.image_count == math.floor(seconds / 2) + 1
    for path in images:
        v = ffprobe(path).stream("video")
        assert (v["codec_name"], v["width"], v["height"]) == ("mjpeg", 320, 180)


async def test_participant_egress_records_only_that_participant(lkapi, egress_api, publishers, room_name):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 3)
    start = egress_api.egress.start_participant_egress(api.ParticipantEgressRequest(
        room_name=room_name, identity="pub-1", file_outputs=[api.EncodedFileOutput(filepath="{room_name}-p1.mp4")]))
    final, seconds = await run_egress(egress_api, start, 4)
    assert final.WhichOneof("request") == "participant" and final.participant.identity == "pub-1"
    path = final.file_results[0].location
    probe = ffprobe(path)
    assert (probe.stream("video")["width"], probe.stream("video")["height"]) == (1280, 720)
    u, v = frame_chroma(frame_at(path, seconds / 2), 1280, 720)
    _, want_u, want_v = participant_colour(1)
    assert abs(u - want_u) <= 4 and abs(v - want_v) <= 4  # pub-1's picture fills the frame
    assert abs(dominant_hz(path, 1.0, 1.0) - tone_hz(1)) <= 10  # and only pub-1 is heard


async def test_track_composite_pairs_any_audio_with_any_video(lkapi, egress_api, publishers, room_name):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 2)
    participants = (await lkapi.room.list_participants(api.ListParticipantsRequest(room=room_name))).participants
    tracks = {(p.identity, api.TrackType.Name(t.type)): t.sid for p in participants for t in p.tracks}
    audio_sid, video_sid = tracks[("pub-0", "AUDIO")], tracks[("pub-1", "VIDEO")]

    with pytest.raises(api.TwirpError) as e:
        await egress_api.egress.start_track_composite_egress(api.TrackCompositeEgressRequest(
            room_name=room_name, audio_track_id="TR_nope", file_outputs=[api.EncodedFileOutput()]))
    assert e.value.code == "not_found" and "audio_track_id" in e.value.message
    with pytest.raises(api.TwirpError) as e:
        await egress_api.egress.start_track_composite_egress(api.TrackCompositeEgressRequest(
            room_name=room_name, audio_track_id=video_sid, file_outputs=[api.EncodedFileOutput()]))
    assert e.value.code == "invalid_argument" and "audio_track_id" in e.value.message

    start = egress_api.egress.start_track_composite_egress(api.TrackCompositeEgressRequest(
        room_name=room_name, audio_track_id=audio_sid, video_track_id=video_sid,
        file_outputs=[api.EncodedFileOutput(filepath="tc.mp4")]))
    final, seconds = await run_egress(egress_api, start, 4)
    path = final.file_results[0].location
    assert abs(ffprobe(path).duration - seconds) <= 0.5
    u, v = frame_chroma(frame_at(path, seconds / 2), 1280, 720)
    _, want_u, want_v = participant_colour(1)
    assert abs(u - want_u) <= 4 and abs(v - want_v) <= 4
    assert abs(dominant_hz(path, 1.0, 1.0) - tone_hz(0)) <= 10


async def test_update_layout_changes_the_picture(lkapi, egress_api, publishers, room_name):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 3)
    switched = {}

    async def switch(active):
        switched["at"] = (time.time_ns() - active.started_at) / 1e9
        info = await egress_api.egress.update_layout(api.UpdateLayoutRequest(egress_id=active.egress_id,
                                                                             layout="single-speaker-light"))
        assert info.room_composite.layout == "single-speaker-light"

    start = egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
        room_name=room_name, layout="grid", file_outputs=[api.EncodedFileOutput(filepath="layout.mp4")]))
    final, seconds = await run_egress(egress_api, start, 6, during=switch)
    path = final.file_results[0].location
    before = frame_at(path, switched["at"] - 1.0)
    after = frame_at(path, switched["at"] + 1.5)
    assert distinct_colours(tile_chroma(before, 1280, 720, 3)) == 3  # grid: three participants
    # single speaker: one participant's colour over the whole picture, i.e. every grid cell alike
    assert distinct_colours(tile_chroma(after, 1280, 720, 4)) == 1
    u, v = frame_chroma(after, 1280, 720)
    assert min(math.hypot(u - c[1], v - c[2]) for c in map(participant_colour, range(3))) <= 4

    with pytest.raises(api.TwirpError) as e:
        await egress_api.egress.update_layout(api.UpdateLayoutRequest(egress_id=final.egress_id, layout="grid"))
    assert e.value.code == "failed_precondition"


@pytest.fixture(scope="module")
def rtmp(tmp_path_factory):
    from support.rtmp_server import RtmpServer

    with RtmpServer(tmp_path_factory.mktemp("rtmp")) as server:
        yield server


async def test_rtmp_stream_and_update_stream(lkapi, egress_api, publishers, room_name, rtmp):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 2)
    dead_url = "rtmp://127.0.0.1:9/live/nobody-listens"
    first, second = f"{room_name}-a", f"{room_name}-b"

    async def add_second(active):
        info = await egress_api.egress.update_stream(api.UpdateStreamRequest(
            egress_id=active.egress_id, add_output_urls=[rtmp.url(second)]))
        assert len(info.stream_results) >= 2
        with pytest.raises(api.TwirpError) as e:
            await egress_api.egress.update_stream(api.UpdateStreamRequest(
                egress_id=active.egress_id, add_output_urls=["http://example.invalid/x"]))
        assert e.value.code == "invalid_argument" and "add_output_urls[0]" in e.value.message

    start = egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
        room_name=room_name, stream_outputs=[api.StreamOutput(protocol=api.StreamProtocol.RTMP,
                                                              urls=[rtmp.url(first), dead_url])]))
    final, seconds = await run_egress(egress_api, start, 8, during=add_second)

    # stream keys never come back; the dead URL failed without ending the egress
    assert all(first not in u and second not in u for r in final.stream_results for u in [r.url])
    assert all(first not in u for o in final.room_composite.stream_outputs for u in o.urls)
    statuses = sorted(api.StreamInfo.Status.Name(r.status) for r in final.stream_results)
    assert statuses == ["FAILED", "FINISHED", "FINISHED"], final.stream_results
    assert all("nobody-listens" not in r.error for r in final.stream_results), final.stream_results
    await asyncio.sleep(1)  # nginx closes its recordings when the publisher disconnects
    (a,) = rtmp.recordings(first)
    (b,) = rtmp.recordings(second)
    pa, pb = ffprobe(a), ffprobe(b)
    for p in (pa, pb):
        assert p.stream("video")["codec_name"] == "h264" and (p.stream("video")["width"], p.stream("video")["height"]) == (1280, 720)
        assert p.stream("audio")["codec_name"] == "aac"
    assert abs(pa.duration - seconds) <= 1.0
    assert 1.5 <= pb.duration <= seconds / 2 + 0.5  # joined half-way (at a keyframe)


async def test_a_stream_only_egress_ends_with_its_last_stream(lkapi, egress_api, publishers, room_name, rtmp):
    """As LiveKit's egress: no output left ends it, FAILED (503, the stream's error) when the last stream
    failed, COMPLETE ("All streams stopped") when UpdateStream removed it."""
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1)
    info = await egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
        room_name=room_name, audio_only=True, stream_outputs=[api.StreamOutput(
            protocol=api.StreamProtocol.RTMP, urls=["rtmp://127.0.0.1:9/live/nobody-listens"])]))
    failed, _ = await wait_status(egress_api, info.egress_id, lambda i: i.status in ENDED, timeout_s=30)
    assert failed.status == S.EGRESS_FAILED and failed.error_code == 503, failed
    (stream,) = failed.stream_results
    assert stream.status == api.StreamInfo.FAILED and failed.error == stream.error != ""
    assert "nobody-listens" not in failed.error

    name = f"{room_name}-removed"
    info = await egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
        room_name=room_name, audio_only=True, stream_outputs=[api.StreamOutput(
            protocol=api.StreamProtocol.RTMP, urls=[rtmp.url(name)])]))
    await wait_status(egress_api, info.egress_id, lambda i: i.status == S.EGRESS_ACTIVE)
    await asyncio.sleep(3)
    await egress_api.egress.update_stream(api.UpdateStreamRequest(egress_id=info.egress_id,
                                                                  remove_output_urls=[rtmp.url(name)]))
    final, _ = await wait_status(egress_api, info.egress_id, lambda i: i.status in ENDED, timeout_s=20)
    assert final.status == S.EGRESS_COMPLETE and final.details == "End reason: All streams stopped", final
    assert [r.status for r in final.stream_results] == [api.StreamInfo.FINISHED]
    await asyncio.sleep(1)  # nginx closes its recording when the publisher disconnects
    (recording,) = rtmp.recordings(name)
    assert ffprobe(recording).duration >= 2


async def test_srt_stream(lkapi, egress_api, publishers, room_name, tmp_path, egress_server):
    """SRT (caller, with a passphrase) into a real libsrt listener; a URL nobody listens on fails alone."""
    from support.srt_server import SrtReceiver

    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 2)
    dead_url = "srt://127.0.0.1:9?streamid=nobody&passphrase=never-echoed-srt"
    with SrtReceiver(tmp_path / "srt", passphrase="pyegress-srt-secret") as receiver:
        start = egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
            room_name=room_name, stream_outputs=[api.StreamOutput(protocol=api.StreamProtocol.SRT,
                                                                  urls=[receiver.url, dead_url])]))
        final, seconds = await run_egress(egress_api, start, 8)
        assert await asyncio.to_thread(receiver.wait_finished) == 0
    results = {r.url: r for r in final.stream_results}
    assert len(results) == 2 and all("secret" not in u and "nobody" not in u for u in results)
    statuses = sorted(api.StreamInfo.Status.Name(r.status) for r in final.stream_results)
    assert statuses == ["FAILED", "FINISHED"], final.stream_results
    failed = next(r for r in final.stream_results if r.status == api.StreamInfo.Status.FAILED)
    assert failed.error and "never-echoed" not in failed.error and "nobody" not in failed.error, failed.error
    echoed = [u for o in final.room_composite.stream_outputs for u in o.urls]
    assert len(echoed) == 2 and not any("secret" in u or "never-echoed" in u for u in echoed), echoed
    for log in [egress_server.workdir / "server.log", *egress_server.workdir.glob("logs/*.log")]:
        text = log.read_text(errors="replace")
        assert "pyegress-srt-secret" not in text and "never-echoed-srt" not in text, log
    probe = ffprobe(receiver.path)
    video, audio = probe.stream("video"), probe.stream("audio")
    assert video["codec_name"] == "h264" and (video["width"], video["height"]) == (1280, 720)
    assert audio["codec_name"] == "aac" and int(audio["sample_rate"]) == 48000
    assert abs(probe.duration - seconds) <= 1.0


async def test_stream_url_errors(lkapi, egress_api, room_name):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    srt = api.StreamProtocol.SRT
    for urls, protocol, code, fragment in (
            (["http://host/x"], 0, "invalid_argument", "stream_outputs[0].urls[0]"),
            (["srt://127.0.0.1"], 0, "invalid_argument", "srt://host:port"),
            (["rtmp://127.0.0.1/live/x"], srt, "invalid_argument", "for protocol SRT"),
            ([], 0, "invalid_argument", "stream_outputs[0].urls")):
        with pytest.raises(api.TwirpError) as e:
            await egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
                room_name=room_name, stream_outputs=[api.StreamOutput(protocol=protocol, urls=urls)]))
        assert e.value.code == code and fragment in e.value.message


async def _track_sids(lkapi, room_name) -> dict[tuple[str, str], str]:
    participants = (await lkapi.room.list_participants(api.ListParticipantsRequest(room=room_name))).participants
    return {(p.identity, api.TrackType.Name(t.type)): t.sid for p in participants for t in p.tracks}


async def test_track_egress_to_files(lkapi, egress_api, publishers, room_name):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 2)
    sids = await _track_sids(lkapi, room_name)
    audio = egress_api.egress.start_track_egress(api.TrackEgressRequest(
        room_name=room_name, track_id=sids[("pub-1", "AUDIO")],
        file=api.DirectFileOutput(filepath="tracks/{publisher_identity}-{track_type}-{track_id}")))
    final, seconds = await run_egress(egress_api, audio, 4)
    assert final.file.filename == f"tracks/pub-1-audio-{sids[('pub-1', 'AUDIO')]}.ogg"
    probe = ffprobe(final.file.location)
    a = probe.stream("audio")
    assert (a["codec_name"], int(a["sample_rate"]), probe.stream("video")) == ("opus", 48000, None)
    assert abs(probe.duration - seconds) <= 0.5
    assert abs(dominant_hz(final.file.location, 1.0, 1.0) - tone_hz(1)) <= 10

    video = egress_api.egress.start_track_egress(api.TrackEgressRequest(
        room_name=room_name, track_id=sids[("pub-0", "VIDEO")], file=api.DirectFileOutput()))
    final, seconds = await run_egress(egress_api, video, 4)
    probe = ffprobe(final.file_results[0].location)
    v = probe.stream("video")
    # the publishers send VP8: the codec family and the size of the source are kept
    assert final.file_results[0].filename.endswith(".webm")
    assert (v["codec_name"], v["width"], v["height"], probe.stream("audio")) == ("vp8", 640, 360, None)
    u, vv = frame_chroma(frame_at(final.file_results[0].location, 2.0), 640, 360)
    _, want_u, want_v = participant_colour(0)
    assert abs(u - want_u) <= 4 and abs(vv - want_v) <= 4


async def test_track_egress_audio_to_websocket(lkapi, egress_api, publishers, room_name):
    from websockets.asyncio.server import serve

    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1, first_index=2)
    sids = await _track_sids(lkapi, room_name)
    received: list[bytes] = []

    async def handler(ws):
        async for message in ws:
            received.append(message)

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(api.TwirpError) as e:
            await egress_api.egress.start_track_egress(api.TrackEgressRequest(
                room_name=room_name, track_id=sids[("pub-2", "VIDEO")], websocket_url=f"ws://127.0.0.1:{port}"))
        assert e.value.code == "invalid_argument" and "websocket_url" in e.value.message
        start = egress_api.egress.start_track_egress(api.TrackEgressRequest(
            room_name=room_name, track_id=sids[("pub-2", "AUDIO")], websocket_url=f"ws://127.0.0.1:{port}"))
        final, seconds = await run_egress(egress_api, start, 4)
        await asyncio.sleep(0.5)
    assert all(isinstance(m, bytes) and len(m) == 960 * 2 for m in received)  # 20 ms of s16le mono at 48 kHz
    pcm = np.frombuffer(b"".join(received), dtype="<i2").astype(np.float64)
    assert abs(len(pcm) / 48000 - seconds) <= 0.5
    window = pcm[48000: 96000]
    spectrum = np.abs(np.fft.rfft(window * np.hanning(len(window))))
    assert abs(np.fft.rfftfreq(len(window), 1 / 48000)[spectrum.argmax()] - tone_hz(2)) <= 10


async def test_a_websocket_listener_that_goes_away_fails_the_track_egress(lkapi, egress_api, publishers, room_name):
    """LiveKit fails a track egress whose websocket breaks (Unavailable); it does not record on into nothing."""
    from websockets.asyncio.server import serve

    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1)
    sids = await _track_sids(lkapi, room_name)

    async def handler(ws):
        async for _ in ws:
            break  # the first block, then the listener hangs up

    async with serve(handler, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/audio/listener-token"
        info = await egress_api.egress.start_track_egress(api.TrackEgressRequest(
            room_name=room_name, track_id=sids[("pub-0", "AUDIO")], websocket_url=url))
        final, _ = await wait_status(egress_api, info.egress_id, lambda i: i.status in ENDED, timeout_s=30)
    assert final.status == S.EGRESS_FAILED and final.error_code == 503, final
    assert final.error.startswith("websocket") and "listener-token" not in final.error, final.error


async def test_unified_start_egress_template_and_media(lkapi, egress_api, publishers, room_name):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 2)
    start = egress_api.egress.start_egress(api.StartEgressRequest(
        room_name=room_name, template=api.TemplateSource(layout="grid"),
        outputs=[api.Output(file=api.FileOutput(filepath="unified/{room_name}-template.mp4"))]))
    final, seconds = await run_egress(egress_api, start, 3)
    assert final.WhichOneof("request") == "egress" and final.egress.template.layout == "grid"
    path = final.file_results[0].location
    assert abs(ffprobe(path).duration - seconds) <= 0.5
    assert distinct_colours(tile_chroma(frame_at(path, seconds / 2), 1280, 720, 2)) == 2

    # media source: pub-1's camera; pub-0 heard on the left, pub-1 on the right
    start = egress_api.egress.start_egress(api.StartEgressRequest(
        room_name=room_name,
        media=api.MediaSource(participant_video=api.ParticipantVideo(identity="pub-1"), audio=api.AudioConfig(routes=[
            api.AudioRoute(participant_identity="pub-0", channel=api.AudioChannel.AUDIO_CHANNEL_LEFT),
            api.AudioRoute(participant_identity="pub-1", channel=api.AudioChannel.AUDIO_CHANNEL_RIGHT)])),
        outputs=[api.Output(file=api.FileOutput(filepath="unified/{room_name}-media.mp4"))]))
    final, seconds = await run_egress(egress_api, start, 4)
    path = final.file_results[0].location
    u, v = frame_chroma(frame_at(path, seconds / 2), 1280, 720)
    _, want_u, want_v = participant_colour(1)
    assert abs(u - want_u) <= 4 and abs(v - want_v) <= 4
    assert abs(dominant_hz(path, 1.0, 1.0, channel=0) - tone_hz(0)) <= 10
    assert abs(dominant_hz(path, 1.0, 1.0, channel=1) - tone_hz(1)) <= 10


async def test_audio_mixing_dual_channel(lkapi, egress_api, publishers, room_name):
    """RoomCompositeEgressRequest.audio_mixing: DUAL_CHANNEL_AGENT puts the agent on the left and the
    others on the right; DUAL_CHANNEL_ALTERNATE gives each new track the other side."""
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1)  # pub-0, a standard participant
    publishers(room_name, 1, first_index=1, kind="agent")  # pub-1, an agent
    listed = (await lkapi.room.list_participants(api.ListParticipantsRequest(room=room_name))).participants
    assert {p.identity: p.kind for p in listed} == {"pub-0": api.ParticipantInfo.Kind.STANDARD,
                                                     "pub-1": api.ParticipantInfo.Kind.AGENT}
    start = egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
        room_name=room_name, audio_only=True, audio_mixing=api.AudioMixing.DUAL_CHANNEL_AGENT,
        file_outputs=[api.EncodedFileOutput(filepath="{room_name}-agent.ogg")]))
    final, _ = await run_egress(egress_api, start, 4)
    path = final.file_results[0].location
    assert abs(dominant_hz(path, 1.0, 1.5, channel=0) - tone_hz(1)) <= 10  # the agent, left
    assert abs(dominant_hz(path, 1.0, 1.5, channel=1) - tone_hz(0)) <= 10  # everyone else, right

    start = egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
        room_name=room_name, audio_only=True, audio_mixing=api.AudioMixing.DUAL_CHANNEL_ALTERNATE,
        file_outputs=[api.EncodedFileOutput(filepath="{room_name}-alternate.ogg")]))
    final, _ = await run_egress(egress_api, start, 4)
    path = final.file_results[0].location
    heard = [dominant_hz(path, 1.0, 1.5, channel=c) for c in (0, 1)]
    # one participant per side (which one comes first depends on subscription order)
    assert sorted(min((tone_hz(0), tone_hz(1)), key=lambda t: abs(t - hz)) for hz in heard) == [tone_hz(0), tone_hz(1)]
    assert all(min(abs(hz - tone_hz(0)), abs(hz - tone_hz(1))) <= 10 for hz in heard), heard


async def test_audio_and_video_stay_in_sync(lkapi, egress_api, publishers, room_name):
    """The publisher beeps when its bar passes a one-second mark; in the recording, sound and
    picture of that moment must coincide (lip sync) and must not drift apart."""
    from media_checks import av_offsets_s

    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1)
    start = egress_api.egress.start_participant_egress(api.ParticipantEgressRequest(
        room_name=room_name, identity="pub-0", file_outputs=[api.EncodedFileOutput(filepath="sync.mp4")]))
    final, _ = await run_egress(egress_api, start, 10)
    offsets = av_offsets_s(final.file_results[0].location)
    assert len(offsets) >= 6, offsets
    # ITU-R BT.1359 detectability is 45 ms (sound early) to 125 ms (sound late). Measured here: ~52 ms late,
    # of which the publisher and WebRTC's receive paths are the rest; the mixer's own latency is compensated
    # (without that it was ~100 ms).
    assert -0.045 <= float(np.median(offsets)) <= 0.090, offsets
    # no drift: the second half of the recording is in sync like the first (a single late beep under CPU
    # contention is tolerated; a trend is not)
    half = len(offsets) // 2
    assert abs(float(np.median(offsets[half:])) - float(np.median(offsets[:half]))) <= 0.040, offsets


async def test_audio_only_composite_to_mp3(lkapi, egress_api, publishers, room_name):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 2)
    start = egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
        room_name=room_name, audio_only=True,
        file_outputs=[api.EncodedFileOutput(filepath="{room_name}-mix", file_type=api.EncodedFileType.MP3)]))
    final, seconds = await run_egress(egress_api, start, 4)
    assert final.file_results[0].filename == f"{room_name}-mix.mp3"
    probe = ffprobe(final.file_results[0].location)
    a = probe.stream("audio")
    assert (a["codec_name"], int(a["sample_rate"]), probe.stream("video")) == ("mp3", 48000, None)
    assert abs(probe.duration - seconds) <= 0.5
