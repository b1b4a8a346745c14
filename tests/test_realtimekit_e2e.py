"""Cloudflare RealtimeKit recordings through the real ``cloudflare`` SDK, both generations, on a real room.

The current SDK (5.3+) is a test dependency; SDK 5.2.0 lives in ``.venv/cloudflare-5.2`` (``scripts/setup
--test``) and runs in a subprocess, since two versions cannot share one interpreter.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import cloudflare
import httpx
import numpy as np
import pytest
from cloudflare import AsyncCloudflare
from livekit import api

from media_checks import av_offsets_at, counter_frames, packet_times
from pyegress.devtools.probe import ffprobe

ACCOUNT, APP = "023e105f4ecef8ad9ca31a8372d0c353", "app-1"
SDK_5_2 = Path(__file__).resolve().parents[1] / ".venv" / "cloudflare-5.2"
SECRETS = ("AKIA-NEVER-ECHOED", "s3cr3t-never-echoed")
ENDED = ("UPLOADED", "ERRORED")


def token(livekit, user: str) -> str:
    """A LiveKit access token naming ``user`` with roomRecord (what a RealtimeKit API token is to pyegress)."""
    return api.AccessToken(livekit.api_key, livekit.api_secret).with_identity(user) \
        .with_grants(api.VideoGrants(room_record=True)).to_jwt()


@pytest.fixture
async def cf(egress_server, livekit):
    """The current SDK as user ``alice``."""
    async with AsyncCloudflare(api_token=token(livekit, "alice"), base_url=f"{egress_server.url}/client/v4") as c:
        yield c.realtime_kit.recordings


async def wait_recording(cf, recording_id: str, done, timeout_s: float = 60.0):
    """Poll get_one_recording until ``done(data)``; returns the recording."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        data = (await cf.get_one_recording(recording_id, account_id=ACCOUNT, app_id=APP)).data
        if done(data):
            return data
        await asyncio.sleep(0.1)
    raise AssertionError(f"recording {recording_id} did not get there in {timeout_s} s: {data}")


def run_sdk_5_2(egress_server, livekit, code: str) -> dict:
    """Run ``code`` with cloudflare 5.2.0 (``client`` bound, as alice); it prints one JSON line, returned."""
    assert (SDK_5_2 / "cloudflare").is_dir(), f"cloudflare 5.2 is not installed in {SDK_5_2}: run scripts/setup --test"
    script = ("import json, cloudflare\n"
              "assert cloudflare.__version__ == '5.2.0', cloudflare.__version__\n"
              f"client = cloudflare.Cloudflare(api_token={token(livekit, 'alice')!r}, "
              f"base_url={egress_server.url + '/client/v4'!r}, max_retries=0)\n"
              f"ACCOUNT, APP = {ACCOUNT!r}, {APP!r}\n" + code)
    env = dict(os.environ, PYTHONPATH=str(SDK_5_2))
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


async def test_track_recording_sdk_5_2_layers(cf, lkapi, publishers, room_name, egress_server, livekit):
    """The RealtimeKit docs' request: layers ``default`` (audio) and ``default-video`` to REALTIMEKIT_BUCKET."""
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1)
    out = run_sdk_5_2(egress_server, livekit, f"""
raw = client.realtime_kit.recordings.with_raw_response.start_track_recording(
    APP, account_id=ACCOUNT, meeting_id={room_name!r}, max_seconds=60,
    layers={{"default": {{"file_name_prefix": "aud", "outputs": [{{"type": "REALTIMEKIT_BUCKET"}}]}},
            "default-video": {{"file_name_prefix": "vid", "outputs": [{{"type": "REALTIMEKIT_BUCKET"}}]}}}})
bad = None
try:
    client.realtime_kit.recordings.start_track_recording(
        APP, account_id=ACCOUNT, meeting_id={room_name!r},
        layers={{"default": {{"outputs": [{{"type": "STORAGE_CONFIG", "storage_config": {{
            "type": "sftp", "host": "127.0.0.1", "username": "u", "auth_method": "KEY",
            "password": "{SECRETS[1]}"}}}}]}}}})
except cloudflare.UnprocessableEntityError as e:
    bad = {{"status": e.status_code, "body": e.body}}
print(json.dumps({{"status": raw.http_response.status_code, "body": raw.http_response.json(), "bad": bad}}))
""")
    assert out["status"] == 200 and out["body"]["success"] is True
    rec = out["body"]["data"]["recording"]
    assert rec["status"] in ("INVOKED", "RECORDING") and rec["output_file_name"].startswith("aud_pub-0_")
    # an incomplete storage config is refused naming the field, and the password is not echoed
    assert out["bad"]["status"] == 422, out["bad"]
    assert out["bad"]["body"]["error"]["field"] == "layers.default.outputs[0].storage_config.private_key"
    assert SECRETS[1] not in json.dumps(out["bad"])

    await wait_recording(cf, rec["id"], lambda d: d.status == "RECORDING")
    await asyncio.sleep(3)
    stopped = await cf.pause_resume_stop_recording(rec["id"], account_id=ACCOUNT, app_id=APP, action="stop")
    assert stopped.data.status in ("RECORDING", "UPLOADING", "UPLOADED")
    final = await wait_recording(cf, rec["id"], lambda d: d.status in ENDED)
    assert final.status == "UPLOADED", final
    assert final.stop_reason.reason == "API_CALL" and final.stop_reason.caller.user_id == "alice"

    files = sorted((egress_server.recordings_dir / room_name).iterdir())
    names = [f.name for f in files if not f.name.endswith(".json")]
    assert names == [f"aud_pub-0_{rec['id']}.webm", f"vid_pub-0_{rec['id']}.mp4"], names
    audio = ffprobe(files[0])
    assert audio.stream("video") is None and audio.stream("audio")["codec_name"] == "opus"
    video = ffprobe(egress_server.recordings_dir / room_name / names[1])
    v = video.stream("video")
    assert (v["codec_name"], v["width"], v["height"]) == ("h264", 640, 360)  # the camera's own size
    assert video.stream("audio")["codec_name"] == "aac" and 2.0 <= video.duration <= 5.0
    # the download link serves the first file, byte for byte
    got = httpx.get(final.download_url, timeout=10)
    assert got.status_code == 200 and got.content == files[0].read_bytes()
    assert final.file_size == sum(f.stat().st_size for f in files if not f.name.endswith(".json"))


async def test_track_recording_current_sdk_user_ids(cf, lkapi, publishers, room_name, egress_server):
    """SDK 5.3+: ``layers`` with ``media_kind`` and ``user_ids``: one WebM/Opus file of that user only."""
    assert tuple(int(x) for x in cloudflare.__version__.split(".")[:2]) >= (5, 3), cloudflare.__version__
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 2)
    with pytest.raises(cloudflare.UnprocessableEntityError) as e:
        await cf.start_track_recording(APP, account_id=ACCOUNT, meeting_id=room_name, user_ids=["nobody"])
    assert e.value.body["error"]["field"] == "user_ids[0]"

    # max_seconds is no longer a 5.3+ parameter; it still passes as extra body (docs/wire.md) and ends the recording
    reply = await cf.start_track_recording(APP, account_id=ACCOUNT, meeting_id=room_name, user_ids=["pub-1"],
                                           layers={"speech": {"file_name_prefix": "spk", "media_kind": "audio"}},
                                           extra_body={"max_seconds": 3})
    rec = reply.data.recording
    assert rec.status in ("INVOKED", "RECORDING") and rec.output_file_name == f"spk_pub-1_{rec.id}.webm"
    final = await wait_recording(cf, rec.id, lambda d: d.status in ENDED)
    assert final.status == "UPLOADED" and final.recording_duration in (2, 3), final
    files = [f for f in (egress_server.recordings_dir / room_name).iterdir() if not f.name.endswith(".json")]
    assert [f.name for f in files] == [rec.output_file_name]
    probe = ffprobe(files[0])
    assert probe.stream("audio")["codec_name"] == "opus" and probe.raw["format"]["format_name"].startswith("matroska")


async def test_track_recording_adds_participants_who_join(cf, lkapi, publishers, room_name, egress_server):
    """Without ``user_ids``, a participant who joins while the track recording runs is recorded too."""
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1)
    rec = (await cf.start_track_recording(APP, account_id=ACCOUNT, meeting_id=room_name)).data.recording
    await wait_recording(cf, rec.id, lambda d: d.status == "RECORDING")
    publishers(room_name, 1, first_index=1)  # pub-1 joins late
    await asyncio.sleep(8)
    await cf.pause_resume_stop_recording(rec.id, account_id=ACCOUNT, app_id=APP, action="stop")
    final = await wait_recording(cf, rec.id, lambda d: d.status in ENDED)
    assert final.status == "UPLOADED", final
    files = sorted(f for f in (egress_server.recordings_dir / room_name).iterdir() if not f.name.endswith(".json"))
    assert [f.name for f in files] == [f"default_pub-0_{rec.id}.webm", f"default_pub-1_{rec.id}.webm"]
    first, late = ffprobe(files[0]), ffprobe(files[1])
    assert first.stream("audio")["codec_name"] == late.stream("audio")["codec_name"] == "opus"
    assert 1.0 <= late.duration <= first.duration - 1.0, (first.duration, late.duration)
    assert final.file_size == sum(f.stat().st_size for f in files)


async def test_composite_pause_resume_stop(cf, lkapi, publishers, room_name, egress_server, livekit):
    """Composite start/get/list/active, pause and resume through pause_resume_stop_recording: one MP4 whose
    timeline has no gap, lasting the recorded time without the pause, with the frame counter jumping."""
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1)
    started = await cf.start_recordings(APP, account_id=ACCOUNT, meeting_id=room_name, file_name_prefix="meet",
                                        video_config={"codec": "H264", "width": 640, "height": 360})
    rid = started.data.id
    assert started.data.status in ("INVOKED", "RECORDING") and started.data.output_file_name == f"meet_{rid}.mp4"
    # one composite at a time unless allow_multiple_recordings
    with pytest.raises(cloudflare.BadRequestError) as e:
        await cf.start_recordings(APP, account_id=ACCOUNT, meeting_id=room_name)
    assert e.value.body["error"]["field"] == "meeting_id"

    rec = await wait_recording(cf, rid, lambda d: d.status == "RECORDING")
    active = await cf.get_active_recordings(room_name, account_id=ACCOUNT, app_id=APP)
    assert active.data.id == rid and active.data.session_id.startswith("RM_")
    t_start = rec.started_time.timestamp()

    # PUT pause/resume return once the worker has acted: the switch happened between the call and its reply
    await asyncio.sleep(4)
    t0 = time.time()
    paused = await cf.pause_resume_stop_recording(rid, account_id=ACCOUNT, app_id=APP, action="pause")
    t_pause, pause_window = (t0 + time.time()) / 2, (time.time() - t0) / 2
    assert paused.data.status == "PAUSED"
    listed = await cf.get_recordings(APP, account_id=ACCOUNT, meeting_id=room_name, status=["PAUSED", "RECORDING"])
    assert [r.id for r in listed.data] == [rid]
    await asyncio.sleep(3)
    t0 = time.time()
    resumed = await cf.pause_resume_stop_recording(rid, account_id=ACCOUNT, app_id=APP, action="resume")
    t_resume, resume_window = (t0 + time.time()) / 2, (time.time() - t0) / 2
    assert resumed.data.status == "RECORDING"
    await asyncio.sleep(4)
    t_stop = time.time()
    await cf.pause_resume_stop_recording(rid, account_id=ACCOUNT, app_id=APP, action="stop")
    final = await wait_recording(cf, rid, lambda d: d.status in ENDED)
    assert final.status == "UPLOADED" and final.stop_reason.reason == "API_CALL"
    assert final.stopped_time >= final.started_time >= final.invoked_time

    # another user sees none of it
    async with AsyncCloudflare(api_token=token(livekit, "bob"), base_url=f"{egress_server.url}/client/v4") as bob:
        with pytest.raises(cloudflare.NotFoundError):
            await bob.realtime_kit.recordings.get_one_recording(rid, account_id=ACCOUNT, app_id=APP)
        with pytest.raises(cloudflare.NotFoundError):
            await bob.realtime_kit.recordings.pause_resume_stop_recording(rid, account_id=ACCOUNT, app_id=APP,
                                                                         action="stop")
        assert (await bob.realtime_kit.recordings.get_recordings(APP, account_id=ACCOUNT)).data == []

    page = await cf.get_recordings(APP, account_id=ACCOUNT, meeting_id=room_name, status=["UPLOADED"], per_page=1,
                                   page_no=1, sort_by="invokedTime", sort_order="DESC",
                                   start_time=datetime.fromtimestamp(t_start - 60).astimezone())
    assert [r.id for r in page.data] == [rid] and page.paging.total_count == 1

    path = egress_server.recordings_dir / room_name / final.output_file_name
    recorded = (t_pause - t_start) + (t_stop - t_resume)
    slack = 0.5 + pause_window + resume_window
    probe = ffprobe(path)
    assert abs(probe.duration - recorded) <= slack, (probe.duration, recorded, slack)
    assert abs(final.recording_duration - recorded) <= slack + 0.5
    # no hole in either timeline where the pause was
    video_pts, audio_pts = packet_times(path, "v"), packet_times(path, "a")
    assert max(np.diff(video_pts)) <= 0.25, max(np.diff(video_pts))
    audio_steps = np.diff([t for t in audio_pts if t >= 0.5])  # from past the AAC encoder's priming
    assert max(audio_steps) <= 1024 / 48000 + 1e-3, max(audio_steps)
    assert len(video_pts) >= 0.9 * 30 * probe.duration
    # the picture jumps by the pause: the publisher's counter skips ~3 s of frames at ~4 s into the file
    frames = counter_frames(path)
    assert len(frames) >= 0.8 * len(video_pts)
    jumps = [(b[1] - a[1], b[0]) for a, b in zip(frames, frames[1:])]
    big, at = max(jumps)
    assert abs(big / 30 - (t_resume - t_pause)) <= slack, (big, t_resume - t_pause, slack)
    assert abs(at - (t_pause - t_start)) <= 0.5 + pause_window, (at, t_pause - t_start)
    assert sorted(j for j, _ in jumps)[-2] <= 10, [(j, round(t, 2)) for j, t in jumps if j not in (0, 1)]  # elsewhere the counter runs on
    # the file and the skipped stretch together cover the whole time from start to stop
    assert abs(probe.duration + big / 30 - (t_stop - t_start)) <= 0.5, (probe.duration, big, t_stop - t_start)
    # sound and picture stay together after the resume as before it
    # sound and picture keep the relation they had before the pause (beeps heard during the pause, still
    # queued in a busy worker, would make sound late by that much); single beeps are noisy on busy cores
    offsets = av_offsets_at(path)
    before = [o for t, o in offsets if t < at - 0.5]
    after = [o for t, o in offsets if t > at + 0.5]
    assert before and len(after) >= 3, offsets
    assert abs(float(np.median(after)) - float(np.median(before))) <= 0.1, (at, offsets)
    assert -0.045 <= float(np.median(after)) <= 0.2, (at, offsets)


async def test_storage_config_secrets_never_returned(cf, lkapi, publishers, room_name, egress_server):
    """STORAGE_CONFIG credentials are write-only: no reply, list or log shows them."""
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1)
    storage = {"type": "aws", "access_key": SECRETS[0], "secret": SECRETS[1], "bucket": "rec-bucket",
               "region": "eu-west-1", "path": "meetings"}
    with pytest.raises(cloudflare.UnprocessableEntityError) as e:
        await cf.start_recordings(APP, account_id=ACCOUNT, meeting_id=room_name,
                                  storage_config=storage | {"type": "sftp"})
    assert e.value.body["error"]["field"] == "storage_config.host" and SECRETS[1] not in json.dumps(e.value.body)

    started = await cf.with_raw_response.start_recordings(APP, account_id=ACCOUNT, meeting_id=room_name,
                                                          storage_config=storage, audio_config={"export_file": True})
    texts = [started.http_response.text]
    rid = json.loads(texts[0])["data"]["id"]
    await wait_recording(cf, rid, lambda d: d.status == "RECORDING")
    await asyncio.sleep(2)
    for call in (cf.with_raw_response.get_one_recording(rid, account_id=ACCOUNT, app_id=APP),
                 cf.with_raw_response.get_active_recordings(room_name, account_id=ACCOUNT, app_id=APP),
                 cf.with_raw_response.get_recordings(APP, account_id=ACCOUNT),
                 cf.with_raw_response.pause_resume_stop_recording(rid, account_id=ACCOUNT, app_id=APP,
                                                                  action="stop")):
        texts.append((await call).http_response.text)
    assert json.loads(texts[1])["data"]["storage_config"] == {
        "type": "aws", "bucket": "rec-bucket", "region": "eu-west-1", "path": "meetings"}
    for text in texts:
        assert not any(s in text for s in SECRETS), text
    # the bucket is unreachable from here: the recording ends with its files kept locally
    final = await wait_recording(cf, rid, lambda d: d.status in ENDED, timeout_s=90)
    assert final.status == "UPLOADED" and final.output_file_name == f"{rid}.mp4"
    got = httpx.get(final.download_url, timeout=10)  # the local copy stays downloadable
    assert got.status_code == 200 and got.content[4:8] == b"ftyp"
    assert final.audio_download_url and final.download_url_expiry > final.stopped_time
    kept = egress_server.recordings_dir / "meetings"
    assert sorted(f.name for f in kept.iterdir() if f.name.startswith(rid) and not f.name.endswith(".json")) == \
        [f"{rid}.m4a", f"{rid}.mp4"]
    assert ffprobe(kept / f"{rid}.m4a").stream("video") is None
    log = (egress_server.workdir / "server.log").read_text() + "".join(
        p.read_text() for p in (egress_server.workdir / "logs").glob("*.log"))
    assert not any(s in log for s in SECRETS)


async def test_errors_name_the_field(cf, egress_server, livekit):
    with pytest.raises(cloudflare.NotFoundError) as e:
        await cf.start_recordings(APP, account_id=ACCOUNT, meeting_id="no-such-room")
    assert e.value.body["error"]["field"] == "meeting_id"
    for body, field in (({"video_config": {"codec": "VP9"}}, "video_config.codec"),
                        ({"video_config": {"width": 641}}, "video_config.width"),
                        ({"max_seconds": 10}, "max_seconds"),
                        ({"audio_config": {"channel": "mono"}}, "audio_config.channel")):
        with pytest.raises(cloudflare.UnprocessableEntityError) as e:
            await cf.start_recordings(APP, account_id=ACCOUNT, meeting_id="any", **body)
        assert e.value.body == {"success": False, "error": {"code": 422, "message": e.value.body["error"]["message"],
                                                              "field": field}}, e.value.body
    with pytest.raises(cloudflare.UnprocessableEntityError) as e:  # it would name a directory
        await cf.start_track_recording(APP, account_id=ACCOUNT, meeting_id="../elsewhere")
    assert e.value.body["error"]["field"] == "meeting_id"
    with pytest.raises(cloudflare.NotFoundError):
        await cf.get_one_recording("00000000-0000-0000-0000-000000000000", account_id=ACCOUNT, app_id=APP)
    with pytest.raises(cloudflare.NotFoundError):
        await cf.get_active_recordings("no-such-room", account_id=ACCOUNT, app_id=APP)
    with pytest.raises(cloudflare.UnprocessableEntityError) as e:
        await cf.get_recordings(APP, account_id=ACCOUNT, status=["DONE"])  # type: ignore[list-item]
    assert e.value.body["error"]["field"] == "status"
    # without /client/v4 too; without a token: 401
    r = httpx.get(f"{egress_server.url}/accounts/{ACCOUNT}/realtime/kit/{APP}/recordings")
    assert r.status_code == 401 and r.json()["success"] is False
    r = httpx.put(f"{egress_server.url}/accounts/{ACCOUNT}/realtime/kit/{APP}/recordings/x", content=b"{",
                  headers={"Authorization": f"Bearer {token(livekit, 'alice')}"})
    assert r.status_code == 400 and r.json()["success"] is False


async def test_composite_uploads_to_sftp_storage_config(cf, lkapi, publishers, room_name, egress_server, tmp_path):
    """STORAGE_CONFIG ``sftp`` (password auth) against a real SFTP server: the MP4 lands under ``path``."""
    from support.sftp_server import SFTPServer

    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1)
    with SFTPServer(tmp_path / "sftp") as sftp:
        storage = {"type": "sftp", "host": "127.0.0.1", "port": sftp.port, "username": sftp.username,
                   "password": sftp.password, "auth_method": "PASSWORD", "path": "meetings"}
        started = await cf.start_recordings(APP, account_id=ACCOUNT, meeting_id=room_name, storage_config=storage,
                                            video_config={"codec": "H264", "width": 640, "height": 360})
        rid = started.data.id
        await wait_recording(cf, rid, lambda d: d.status == "RECORDING")
        await asyncio.sleep(3)
        await cf.pause_resume_stop_recording(rid, account_id=ACCOUNT, app_id=APP, action="stop")
        final = await wait_recording(cf, rid, lambda d: d.status in ENDED, timeout_s=90)
        assert final.status == "UPLOADED", final
        uploaded = sftp.root / "meetings" / f"{rid}.mp4"
        probe = ffprobe(uploaded)
        assert probe.stream("video")["codec_name"] == "h264" and probe.duration > 2.5
        # the local copy goes once the object is confirmed; the password never shows
        assert not (egress_server.recordings_dir / "meetings" / f"{rid}.mp4").exists()
        assert sftp.password not in final.to_json()
