"""Real room recordings uploaded to each storage backend on loopback (GCS emulator, Azurite, SFTP,
SeaweedFS): objects fetched back and ffprobed, HLS segments in the bucket while the egress is still
ACTIVE, a storage server stopped and restarted mid-recording, the config file's default storage, and
backup storage when the destination is down for good."""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import obstore
import pytest
from livekit import api
from obstore.store import S3Store

from conftest import EMPTY_TIMEOUT_S, wait_status
from support.azure_server import ACCOUNT_KEY, ACCOUNT_NAME, AzureServer
from support.gcs_server import GCSServer
from pyegress.devtools.process import free_port
from pyegress.devtools.probe import ffprobe
from pyegress.devtools.pyegress_server import PyegressServer
from support.s3_server import S3Server
from support.sftp_server import SFTPServer

S = api.EgressStatus
ENDED = (S.EGRESS_COMPLETE, S.EGRESS_FAILED, S.EGRESS_LIMIT_REACHED, S.EGRESS_ABORTED)
GCS_SECRET = "gcs-private-key-never-echoed"


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
    with GCSServer(tmp_path_factory.mktemp("gcs")) as server:
        yield server


@pytest.fixture(scope="module")
def azure(tmp_path_factory):
    with AzureServer(tmp_path_factory.mktemp("azure")) as server:
        server.create_container("recordings")
        yield server


@pytest.fixture(scope="module")
def sftp(tmp_path_factory):
    with SFTPServer(tmp_path_factory.mktemp("sftp")) as server:
        yield server


@pytest.fixture(scope="module")
def configured_server(livekit, azure, sftp, tmp_path_factory):
    """pyegress with a config file: default storage Azure (prefix ``pfx``), backup SFTP; uploads tried 7
    times from 0.2 s (12.6 s of waiting), enough to ride out a storage server restart."""
    config = {"storage": {"prefix": "pfx", "azure": {"account_name": ACCOUNT_NAME, "account_key": ACCOUNT_KEY,
                                                     "container_name": "recordings", "endpoint": azure.endpoint}},
              "backup": {"sftp": {"host": "127.0.0.1", "port": sftp.port, "username": sftp.username,
                                  "password": sftp.password, "base_path": "/backup"}}}
    with PyegressServer(tmp_path_factory.mktemp("pyegress-storage"), livekit.url, livekit.api_key,
                        livekit.api_secret, extra_env={
                            "EGRESS_CONFIG_BODY": json.dumps(config),  # YAML is a superset of JSON
                            "PYEGRESS_EMPTY_TIMEOUT_S": str(EMPTY_TIMEOUT_S), "PYEGRESS_PROGRESS_INTERVAL_S": "1",
                            "PYEGRESS_UPLOAD_ATTEMPTS": "7", "PYEGRESS_UPLOAD_RETRY_BASE_S": "0.2"}) as server:
        yield server


@pytest.fixture
async def configured_api(configured_server, livekit):
    async with api.LiveKitAPI(configured_server.url, livekit.api_key, livekit.api_secret) as lk:
        yield lk


def s3_bucket(s3: S3Server) -> S3Store:
    return S3Store("recordings", endpoint=s3.endpoint, access_key_id="x", secret_access_key="x",
                   region="us-east-1", virtual_hosted_style_request=False, client_options={"allow_http": True})


def s3_upload(s3: S3Server) -> api.S3Upload:
    return api.S3Upload(bucket="recordings", endpoint=s3.endpoint, force_path_style=True, region="us-east-1",
                        access_key="AKIDEXAMPLE", secret="s3-secret")


def listed(store, prefix: str) -> dict[str, int]:
    """Object names under ``prefix`` with their sizes."""
    return {o["path"]: o["size"] for batch in obstore.list(store, prefix=prefix) for o in batch}


def assert_secret_hidden(server: PyegressServer, egress_id: str, secret: str) -> None:
    """Neither ListEgress (JSON) nor any log of the server or its workers contains ``secret``."""
    token = api.AccessToken(server.env["PYEGRESS_API_KEY"], server.env["PYEGRESS_API_SECRET"]) \
        .with_grants(api.VideoGrants(room_record=True)).to_jwt()
    reply = httpx.post(server.url + "/twirp/livekit.Egress/ListEgress", json={"egress_id": egress_id},
                       headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 200 and egress_id in reply.text and secret not in reply.text
    for log in [server.workdir / "server.log", *server.workdir.glob("logs/*.log")]:
        assert secret not in log.read_text(errors="replace"), log


async def run(client, start, seconds: float, during=None) -> api.EgressInfo:
    info = await start
    await wait_status(client, info.egress_id, lambda i: i.status == S.EGRESS_ACTIVE)
    if during is not None:
        await during(info)
    else:
        await asyncio.sleep(seconds)
    await client.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
    final, _ = await wait_status(client, info.egress_id, lambda i: i.status in ENDED, timeout_s=90)
    return final


def probe_bytes(data: bytes, path) -> object:
    path.write_bytes(data)
    return ffprobe(path)


async def test_gcs_file_and_thumbnails(lkapi, egress_api, egress_server, publishers, room_name, gcs, tmp_path):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 2)
    credentials = json.dumps({**json.loads(gcs.credentials_json), "private_key_id": GCS_SECRET})
    upload = api.GCPUpload(bucket="recordings", credentials=credentials)
    final = await run(egress_api, egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
        room_name=room_name, file_outputs=[api.EncodedFileOutput(filepath="{room_name}/gcs.mp4", gcp=upload)],
        image_outputs=[api.ImageOutput(capture_interval=1, filename_prefix="{room_name}/thumb", gcp=upload)])), 3)
    assert final.status == S.EGRESS_COMPLETE and not final.backup_storage_used, final.error
    (result,) = final.file_results
    assert result.location == f"{gcs.endpoint}/recordings/{room_name}/gcs.mp4"
    data = httpx.get(result.location).content
    assert len(data) == result.size
    probe = probe_bytes(data, tmp_path / "gcs.mp4")
    assert probe.stream("video")["codec_name"] == "h264" and abs(probe.duration - 3) < 0.8
    thumbs = [n for n in (egress_server.recordings_dir / room_name).glob("thumb*")]
    assert not thumbs and not (egress_server.recordings_dir / room_name / "gcs.mp4").exists()  # all uploaded
    (images,) = final.image_results
    for i in range(images.image_count):
        jpeg = httpx.get(f"{gcs.endpoint}/recordings/{room_name}/thumb_{i:05d}.jpeg")
        assert jpeg.status_code == 200 and jpeg.content[:2] == b"\xff\xd8"
    assert images.image_count >= 3
    assert final.room_composite.file_outputs[0].gcp.bucket == "recordings"
    assert final.room_composite.file_outputs[0].gcp.credentials == ""
    assert_secret_hidden(egress_server, final.egress_id, GCS_SECRET)


async def test_track_egress_to_gcs(lkapi, egress_api, egress_server, publishers, room_name, gcs, tmp_path):
    """DirectFileOutput's ``gcp``: an audio track as OGG/Opus, uploaded whole after the stop (only MP4 streams)."""
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1)
    participants = (await lkapi.room.list_participants(api.ListParticipantsRequest(room=room_name))).participants
    (sid,) = [t.sid for p in participants for t in p.tracks if t.type == api.TrackType.AUDIO]
    final = await run(egress_api, egress_api.egress.start_track_egress(api.TrackEgressRequest(
        room_name=room_name, track_id=sid, file=api.DirectFileOutput(
            filepath="{room_name}/{track_id}", gcp=api.GCPUpload(bucket="recordings",
                                                                 credentials=gcs.credentials_json)))), 3)
    assert final.status == S.EGRESS_COMPLETE and not final.backup_storage_used, final.error
    assert final.file.location == f"{gcs.endpoint}/recordings/{room_name}/{sid}.ogg"  # legacy `file` too
    probe = probe_bytes(httpx.get(final.file.location).content, tmp_path / "track.ogg")
    assert probe.stream("audio")["codec_name"] == "opus" and abs(probe.duration - 3) < 0.8
    assert not (egress_server.recordings_dir / room_name / f"{sid}.ogg").exists()


async def test_hls_segments_uploaded_while_active(lkapi, egress_api, egress_server, publishers, room_name, tmp_path):
    """StartEgress's request-wide ``storage``: segments are in the bucket while the egress is ACTIVE."""
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1)
    with S3Server(tmp_path / "s3") as s3:
        bucket = s3_bucket(s3)

        async def segments_arrive(info):
            for _ in range(200):
                names = listed(bucket, f"{room_name}/")
                if sum(n.endswith(".ts") for n in names) >= 2 and f"{room_name}/live.m3u8" in names:
                    break
                await asyncio.sleep(0.1)
            items = (await egress_api.egress.list_egress(api.ListEgressRequest(egress_id=info.egress_id))).items
            assert items[0].status == S.EGRESS_ACTIVE  # still recording
            playlist = bytes(obstore.get(bucket, f"{room_name}/live.m3u8").bytes()).decode()
            assert "#EXTINF" in playlist and "#EXT-X-ENDLIST" not in playlist

        final = await run(egress_api, egress_api.egress.start_egress(api.StartEgressRequest(
            room_name=room_name, template=api.TemplateSource(layout="grid"), storage=api.StorageConfig(s3=s3_upload(s3)),
            outputs=[api.Output(segments=api.SegmentedFileOutput(
                filename_prefix="{room_name}/seg", playlist_name="live.m3u8", segment_duration=1))])), 0,
            during=segments_arrive)
        assert final.status == S.EGRESS_COMPLETE and not final.backup_storage_used, final.error
        (segments,) = final.segment_results
        assert segments.playlist_location == f"{s3.endpoint}/recordings/{room_name}/live.m3u8"
        objects = listed(bucket, f"{room_name}/")
        playlist = bytes(obstore.get(bucket, f"{room_name}/live.m3u8").bytes()).decode()
        names = re.findall(r"^seg_\d{5}\.ts$", playlist, re.M)
        assert "#EXT-X-ENDLIST" in playlist and len(names) == segments.segment_count >= 3
        for name in names:
            (tmp_path / name).write_bytes(bytes(obstore.get(bucket, f"{room_name}/{name}").bytes()))
        assert sum(objects[f"{room_name}/{n}"] for n in names) == segments.size
        (tmp_path / "live.m3u8").write_text(playlist)
        assert abs(ffprobe(tmp_path / "live.m3u8").duration - segments.duration / 1e9) < 0.5
        assert not list((egress_server.recordings_dir / room_name).glob("*.ts"))


async def test_config_default_storage(lkapi, configured_api, configured_server, publishers, room_name, azure,
                                      tmp_path):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1)
    final = await run(configured_api, configured_api.egress.start_room_composite_egress(
        api.RoomCompositeEgressRequest(room_name=room_name, file_outputs=[
            api.EncodedFileOutput(filepath="{room_name}/default.mp4")])), 3)
    assert final.status == S.EGRESS_COMPLETE and not final.backup_storage_used, final.error
    (result,) = final.file_results
    assert result.location == f"{azure.endpoint}/recordings/pfx/{room_name}/default.mp4"
    from pyegress.storage import AzureStorage
    container = AzureStorage(account_name=ACCOUNT_NAME, account_key=ACCOUNT_KEY, container_name="recordings",
                            endpoint=azure.endpoint, prefix="pfx")
    data = httpx.get(container.presign(f"{room_name}/default.mp4", 60)).content  # a SAS URL, as a user shares it
    assert len(data) == result.size
    probe = probe_bytes(data, tmp_path / "default.mp4")
    assert probe.stream("video")["codec_name"] == "h264" and abs(probe.duration - 3) < 0.8
    assert not (configured_server.recordings_dir / room_name / "default.mp4").exists()
    assert final.manifest_location == result.location + ".json"  # uploaded beside the recording
    manifest = httpx.get(container.presign(f"{room_name}/default.mp4.json", 60))
    assert manifest.json()["egress_id"] == final.egress_id and ACCOUNT_KEY not in manifest.text
    assert_secret_hidden(configured_server, final.egress_id, ACCOUNT_KEY)


async def test_backup_storage_when_the_destination_is_down(lkapi, configured_api, configured_server, publishers,
                                                          room_name, sftp):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1)
    dead = api.S3Upload(bucket="recordings", endpoint=f"http://127.0.0.1:{free_port()}", force_path_style=True)
    final = await run(configured_api, configured_api.egress.start_room_composite_egress(
        api.RoomCompositeEgressRequest(room_name=room_name, file_outputs=[
            api.EncodedFileOutput(filepath="{room_name}/backup.mp4", s3=dead)])), 3)
    assert final.status == S.EGRESS_COMPLETE and final.backup_storage_used, final.error
    (result,) = final.file_results
    assert result.location == f"sftp://{sftp.username}@127.0.0.1:{sftp.port}/backup/{room_name}/backup.mp4"
    stored = sftp.root / "backup" / room_name / "backup.mp4"
    assert stored.stat().st_size == result.size
    assert ffprobe(stored).stream("video")["codec_name"] == "h264"
    assert not (configured_server.recordings_dir / room_name / "backup.mp4").exists()
    assert_secret_hidden(configured_server, final.egress_id, sftp.password)


async def test_storage_server_restarted_mid_recording(lkapi, configured_api, publishers, room_name, tmp_path):
    """SeaweedFS goes down 2 s into the recording and comes back: the MP4 and every HLS segment end up
    complete in the bucket, with no backup used."""
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1)
    with S3Server(tmp_path / "s3") as s3:
        async def outage(info):
            await asyncio.sleep(2)
            await asyncio.to_thread(s3.stop)
            await asyncio.sleep(1.5)
            await asyncio.to_thread(s3.start)
            await asyncio.sleep(2)

        upload = s3_upload(s3)
        final = await run(configured_api, configured_api.egress.start_room_composite_egress(
            api.RoomCompositeEgressRequest(
                room_name=room_name, file_outputs=[api.EncodedFileOutput(filepath="{room_name}/full.mp4", s3=upload)],
                segment_outputs=[api.SegmentedFileOutput(filename_prefix="{room_name}/seg", playlist_name="p.m3u8",
                                                         segment_duration=1, s3=upload)])), 0, during=outage)
        assert final.status == S.EGRESS_COMPLETE and not final.backup_storage_used, final.error
        bucket = s3_bucket(s3)
        (result,) = final.file_results
        data = bytes(obstore.get(bucket, f"{room_name}/full.mp4").bytes())
        assert len(data) == result.size
        probe = probe_bytes(data, tmp_path / "full.mp4")
        assert abs(probe.duration - result.duration / 1e9) < 0.5 and probe.duration > 5
        playlist = bytes(obstore.get(bucket, f"{room_name}/p.m3u8").bytes()).decode()
        names = re.findall(r"^seg_\d{5}\.ts$", playlist, re.M)
        objects = listed(bucket, f"{room_name}/")
        assert "#EXT-X-ENDLIST" in playlist and len(names) == final.segment_results[0].segment_count >= 5
        assert all(f"{room_name}/{n}" in objects for n in names)
