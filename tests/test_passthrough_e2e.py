"""Track egress written as the publisher sent it (the packet receiver, ``media/passthrough.py``), end to end:
real livekit-server, generated publishers (VP8, H.264, Opus; a resolution switch), LiveKit's own client, and
the file read back the way a user would (ffprobe, the frame counters, the tone)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import av
import psutil
import pytest
from livekit import api

from conftest import wait_status
from media_checks import counter_frames, dominant_hz, media_span_s
from pyegress.devtools.patterns import tone_hz
from pyegress.devtools.probe import ffprobe
from pyegress.media.passthrough import FLUSH_MS
from pyegress.media.source.packets.stream import TIMER_SLACK_MS

S = api.EgressStatus
ENDED = (S.EGRESS_COMPLETE, S.EGRESS_FAILED, S.EGRESS_ABORTED, S.EGRESS_LIMIT_REACHED)


async def _sids(lkapi, room_name) -> dict[tuple[str, str], str]:
    participants = (await lkapi.room.list_participants(api.ListParticipantsRequest(room=room_name))).participants
    return {(p.identity, api.TrackType.Name(t.type)): t.sid for p in participants for t in p.tracks}


async def _record(egress_api, start, seconds: float):
    """Start, wait for ACTIVE, record ``seconds``, stop; the final EgressInfo."""
    info = await start
    active, _ = await wait_status(egress_api, info.egress_id, lambda i: i.status in (S.EGRESS_ACTIVE, *ENDED))
    assert active.status == S.EGRESS_ACTIVE, active.error
    await asyncio.sleep(seconds)
    await egress_api.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
    final, _ = await wait_status(egress_api, info.egress_id, lambda i: i.status in ENDED)
    assert final.status == S.EGRESS_COMPLETE, final.error
    return final


def _decodes_clean(path) -> int:
    """Decode every video frame; returns how many (raises on a corrupt one)."""
    with av.open(str(path)) as c:
        c.streams.video[0].codec_context.options = {"err_detect": "explode"}
        return sum(1 for _ in c.decode(video=0))


def _assert_counters_in_order(frames: list[tuple[float, int]], seconds: float) -> None:
    """The publisher's frame counters, read from the file: each once, increasing, and (the generator
    skips a slot only when it falls behind) almost none missing."""
    counters = [n for _, n in frames]
    assert len(counters) >= 25 * seconds, len(counters)
    assert all(b > a for a, b in zip(counters, counters[1:])), "a frame repeated or out of order"
    missing = (counters[-1] - counters[0] + 1) - len(counters)
    assert missing <= 0.02 * len(counters), f"{missing} of {counters[-1] - counters[0] + 1} frames missing"
    times = [t for t, _ in frames]
    assert all(b > a for a, b in zip(times, times[1:]))


async def test_vp8_track_is_written_unchanged_every_frame_in_order(lkapi, egress_api, publishers, room_name):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1)
    sid = (await _sids(lkapi, room_name))[("pub-0", "VIDEO")]
    final = await _record(egress_api, egress_api.egress.start_track_egress(api.TrackEgressRequest(
        room_name=room_name, track_id=sid, file=api.DirectFileOutput(filepath="pass/{track_id}.mp4"))), 6)
    (result,) = final.file_results
    # the container VP8 calls for, whatever extension was asked (LiveKit replaces a known wrong one)
    assert result.filename == f"pass/{sid}.webm" and final.file.filename == result.filename
    probe = ffprobe(result.location)
    v = probe.stream("video")
    assert (v["codec_name"], v["width"], v["height"], probe.stream("audio")) == ("vp8", 640, 360, None)
    assert v["r_frame_rate"] == "30/1"  # from the timestamps: no nominal rate of our own is written
    assert abs(result.duration / 1e9 - probe.duration) < 0.1 and result.size == os.path.getsize(result.location)
    frames = counter_frames(result.location)
    _assert_counters_in_order(frames, 5.5)
    assert _decodes_clean(result.location) == len(frames)
    with av.open(result.location) as c:
        first = next(c.demux(video=0))
    assert first.is_keyframe  # a file starts where a decoder can


async def test_simulcast_track_is_recorded_at_its_highest_layer_throughout(lkapi, egress_api, publishers,
                                                                           room_name):
    """A browser-like publisher sends 1280x720 with 640x360 and 320x180 layers: the file holds the
    720p layer from its first frame to its last, every frame once, in order."""
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1, width=1280, height=720, simulcast=True)
    sid = (await _sids(lkapi, room_name))[("pub-0", "VIDEO")]
    final = await _record(egress_api, egress_api.egress.start_track_egress(api.TrackEgressRequest(
        room_name=room_name, track_id=sid, file=api.DirectFileOutput(filepath="simulcast/{track_id}"))), 6)
    path = final.file_results[0].location
    with av.open(path) as c:
        sizes = {(f.width, f.height) for f in c.decode(video=0)}
    assert sizes == {(1280, 720)}
    _assert_counters_in_order(counter_frames(path, 1280, 720), 5.5)


@pytest.mark.parametrize("codec,ext", [("h264", "mp4"), ("vp9", "webm")])
async def test_h264_and_vp9_tracks_and_opus(lkapi, egress_api, publishers, room_name, codec, ext):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1, codec=codec)
    sids = await _sids(lkapi, room_name)
    video = egress_api.egress.start_track_egress(api.TrackEgressRequest(
        room_name=room_name, track_id=sids[("pub-0", "VIDEO")], file=api.DirectFileOutput(filepath=f"{codec}/cam")))
    final = await _record(egress_api, video, 5)
    (result,) = final.file_results
    assert result.filename == f"{codec}/cam.{ext}"
    probe = ffprobe(result.location)
    v = probe.stream("video")
    assert (v["codec_name"], v["width"], v["height"]) == (codec, 640, 360)
    frames = counter_frames(result.location)
    _assert_counters_in_order(frames, 4.5)
    assert _decodes_clean(result.location) == len(frames)
    if codec != "h264":
        return

    audio = egress_api.egress.start_track_egress(api.TrackEgressRequest(
        room_name=room_name, track_id=sids[("pub-0", "AUDIO")], file=api.DirectFileOutput(filepath=f"{codec}/mic.mp4")))
    final = await _record(egress_api, audio, 4)
    (result,) = final.file_results
    assert result.filename == f"{codec}/mic.ogg"
    probe = ffprobe(result.location)
    a = probe.stream("audio")
    assert (a["codec_name"], int(a["sample_rate"])) == ("opus", 48000)
    assert abs(probe.duration - result.duration / 1e9) < 0.1 and probe.duration > 3.5
    assert abs(dominant_hz(result.location, 1.0, 1.0) - tone_hz(0)) <= 10


async def test_resolution_switch_keeps_every_size(lkapi, egress_api, publishers, room_name):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1, resize_every=2)
    sid = (await _sids(lkapi, room_name))[("pub-0", "VIDEO")]
    final = await _record(egress_api, egress_api.egress.start_track_egress(api.TrackEgressRequest(
        room_name=room_name, track_id=sid, file=api.DirectFileOutput())), 7)
    path = final.file_results[0].location
    sizes = []
    with av.open(path) as c:
        for frame in c.decode(video=0):
            if not sizes or sizes[-1] != (frame.width, frame.height):
                sizes.append((frame.width, frame.height))
    assert {(640, 360), (320, 180)} <= set(sizes) and len(sizes) >= 3, sizes
    _assert_counters_in_order(counter_frames(path), 6)


async def test_passthrough_preset_of_start_egress(lkapi, egress_api, publishers, room_name):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1)
    sids = await _sids(lkapi, room_name)
    video_sid, audio_sid = sids[("pub-0", "VIDEO")], sids[("pub-0", "AUDIO")]
    file_out = api.Output(file=api.FileOutput(filepath="preset/{publisher_identity}-{track_type}"))
    bad = [
        (dict(template=api.TemplateSource(layout="grid"), outputs=[file_out]), "preset"),
        (dict(media=api.MediaSource(participant_video=api.ParticipantVideo(identity="pub-0")), outputs=[file_out]),
         "media.participant_video"),
        (dict(media=api.MediaSource(video_track_id=video_sid, audio=api.AudioConfig(routes=[
            api.AudioRoute(track_id=audio_sid)])), outputs=[file_out]), "media"),
        (dict(media=api.MediaSource(audio=api.AudioConfig(routes=[api.AudioRoute(participant_identity="pub-0")])),
              outputs=[file_out]), "media.audio.routes[0]"),
        (dict(media=api.MediaSource(video_track_id=video_sid), outputs=[file_out, file_out]), "outputs"),
        (dict(media=api.MediaSource(video_track_id=video_sid),
              outputs=[api.Output(file=api.FileOutput(file_type=api.EncodedFileType.MP4))]),
         "outputs[0].file.file_type"),
    ]
    for fields, field in bad:
        with pytest.raises(api.TwirpError) as e:
            await egress_api.egress.start_egress(api.StartEgressRequest(
                room_name=room_name, preset=api.EncodingOptionsPreset.PASSTHROUGH, **fields))
        assert e.value.code == "invalid_argument" and e.value.message.startswith(field + ":"), (field, e.value)

    final = await _record(egress_api, egress_api.egress.start_egress(api.StartEgressRequest(
        room_name=room_name, preset=api.EncodingOptionsPreset.PASSTHROUGH,
        media=api.MediaSource(audio=api.AudioConfig(routes=[api.AudioRoute(track_id=audio_sid)])),
        outputs=[file_out])), 3)
    (result,) = final.file_results
    assert result.filename == "preset/pub-0-audio.ogg" and final.egress.preset == api.EncodingOptionsPreset.PASSTHROUGH
    assert ffprobe(result.location).stream("audio")["codec_name"] == "opus"


async def _recording_receiver(lkapi, egress_api, egress_server, publishers, room_name, kind: str, folder: str):
    """A track egress of one generated publisher's ``kind`` track (into ``folder/``), once ACTIVE, and the
    receiver process its handler started."""
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1)
    sid = (await _sids(lkapi, room_name))[("pub-0", kind)]
    info = await egress_api.egress.start_track_egress(api.TrackEgressRequest(
        room_name=room_name, track_id=sid, file=api.DirectFileOutput(filepath=f"{folder}/{{track_id}}")))
    await wait_status(egress_api, info.egress_id, lambda i: i.status == S.EGRESS_ACTIVE)
    (receiver,) = [p for p in psutil.Process(egress_server.pid).children(recursive=True)
                   if p.name() == "receiver" and info.egress_id in " ".join(p.parent().cmdline())]
    return info, receiver


async def test_receiver_crash_fails_the_egress_and_keeps_a_playable_file(
        lkapi, egress_api, egress_server, publishers, room_name):
    info, receiver = await _recording_receiver(lkapi, egress_api, egress_server, publishers, room_name, "VIDEO",
                                               "crash")
    await asyncio.sleep(3 + FLUSH_MS / 1000)  # what the receiver holds when it dies (a batch) is lost
    receiver.send_signal(signal.SIGKILL)
    final, _ = await wait_status(egress_api, info.egress_id, lambda i: i.status in ENDED)
    assert final.status == S.EGRESS_FAILED and "packet receiver exited (code -9)" in final.error, final
    (result,) = final.file_results
    assert media_span_s(result.location) > 2.5
    _assert_counters_in_order(counter_frames(result.location), 2.5)


async def test_receiver_threads_take_the_timer_slack_once_in_the_room(
        lkapi, egress_api, egress_server, publishers, room_name):
    """docs/receiver.md: every thread of a recording receiver has TIMER_SLACK_MS of timer slack."""
    info, receiver = await _recording_receiver(lkapi, egress_api, egress_server, publishers, room_name, "AUDIO",
                                               "slack")
    try:
        slacks = {t.id: int(Path(f"/proc/{t.id}/timerslack_ns").read_text()) for t in receiver.threads()}
    except PermissionError:
        pytest.skip("reading another process's timer slack needs CAP_SYS_NICE")
    await egress_api.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
    final, _ = await wait_status(egress_api, info.egress_id, lambda i: i.status in ENDED)
    assert final.status == S.EGRESS_COMPLETE, final
    assert len(slacks) > 1 and set(slacks.values()) == {TIMER_SLACK_MS * 1_000_000}, slacks


async def test_killed_handler_leaves_no_receiver(lkapi, egress_api, egress_server, publishers, room_name):
    info, receiver = await _recording_receiver(lkapi, egress_api, egress_server, publishers, room_name, "AUDIO",
                                               "orphan")
    handler = receiver.parent()
    handler.send_signal(signal.SIGKILL)
    deadline = time.monotonic() + 5
    while receiver.is_running() and receiver.status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert not receiver.is_running() or receiver.status() == psutil.STATUS_ZOMBIE
    final, _ = await wait_status(egress_api, info.egress_id, lambda i: i.status in ENDED)
    assert final.status == S.EGRESS_FAILED
