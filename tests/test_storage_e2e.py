"""Uploads to a real S3-compatible server (SeaweedFS on loopback): the object in the bucket, retries while
the server is down, the local backup when it stays down, and credentials never echoed or logged."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx
import obstore
import pytest
from livekit import api
from obstore.store import S3Store

from conftest import wait_status
from pyegress.devtools.probe import ffprobe
from support.s3_server import S3Server

S = api.EgressStatus
SECRET = "s3cr3t-never-echoed"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with S3Server(tmp_path_factory.mktemp("s3")) as server:
        yield server


def upload_to(endpoint: str) -> api.S3Upload:
    return api.S3Upload(bucket="recordings", endpoint=endpoint, force_path_style=True, region="us-east-1",
                        access_key="AKIDEXAMPLE", secret=SECRET, metadata={"origin": "pyegress-test"})


def bucket(s3: S3Server) -> S3Store:
    return S3Store("recordings", endpoint=s3.endpoint, access_key_id="x", secret_access_key="x",
                   region="us-east-1", virtual_hosted_style_request=False, client_options={"allow_http": True})


async def record(egress_api, room_name, output: api.EncodedFileOutput, seconds: float, during=None):
    info = await egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
        room_name=room_name, file_outputs=[output]))
    await wait_status(egress_api, info.egress_id, lambda i: i.status == S.EGRESS_ACTIVE)
    await asyncio.sleep(seconds)
    if during is not None:
        during()
    await egress_api.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
    final, _ = await wait_status(egress_api, info.egress_id, lambda i: i.status not in (
        S.EGRESS_STARTING, S.EGRESS_ACTIVE, S.EGRESS_ENDING), timeout_s=60)
    return final


async def test_upload_to_s3(lkapi, egress_api, publishers, room_name, s3, egress_server, tmp_path):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 2)
    final = await record(egress_api, room_name, api.EncodedFileOutput(
        filepath="{room_name}/s3.mp4", s3=upload_to(s3.endpoint)), 3)
    assert final.status == S.EGRESS_COMPLETE and not final.backup_storage_used, final.error
    (result,) = final.file_results
    assert result.location == f"{s3.endpoint}/recordings/{room_name}/s3.mp4"
    assert not (egress_server.recordings_dir / room_name / "s3.mp4").exists()  # removed once confirmed
    data = bytes(obstore.get(bucket(s3), f"{room_name}/s3.mp4").bytes())
    assert len(data) == result.size
    (tmp_path / "s3.mp4").write_bytes(data)
    probe = ffprobe(tmp_path / "s3.mp4")
    assert probe.stream("video")["codec_name"] == "h264" and abs(probe.duration - 3) < 0.8
    head = obstore.head(bucket(s3), f"{room_name}/s3.mp4")
    assert head["size"] == result.size

    # the secret is nowhere: not in EgressInfo (binary or JSON), not in the logs
    assert final.room_composite.file_outputs[0].s3.secret == "" and final.room_composite.file_outputs[0].s3.bucket
    token = api.AccessToken(egress_server.env["PYEGRESS_API_KEY"], egress_server.env["PYEGRESS_API_SECRET"]) \
        .with_grants(api.VideoGrants(room_record=True)).to_jwt()
    reply = httpx.post(egress_server.url + "/twirp/livekit.Egress/ListEgress", json={"egress_id": final.egress_id},
                       headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 200 and "recordings" in reply.text and SECRET not in reply.text
    for log in [egress_server.workdir / "server.log", *egress_server.workdir.glob("logs/*.log")]:
        assert SECRET not in log.read_text(errors="replace"), log


async def test_upload_waits_for_the_server_to_come_back(lkapi, egress_api, publishers, room_name, tmp_path):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1)
    late = S3Server(tmp_path / "late-s3")  # its ports are chosen; nothing listens there yet
    # the server comes up while the upload is being retried (waits of 0.2, 0.4, 0.8, ... s)
    comes_back = threading.Timer(0.5, late.start)
    try:
        final = await record(egress_api, room_name, api.EncodedFileOutput(
            filepath="{room_name}/outage.mp4", s3=upload_to(late.endpoint)), 3, during=comes_back.start)
        comes_back.join()
        assert final.status == S.EGRESS_COMPLETE and not final.backup_storage_used, final.error
        assert final.file_results[0].location == f"{late.endpoint}/recordings/{room_name}/outage.mp4"
        data = bytes(obstore.get(bucket(late), f"{room_name}/outage.mp4").bytes())
        assert len(data) == final.file_results[0].size > 10_000
    finally:
        comes_back.join()
        late.stop()


async def test_upload_that_keeps_failing_keeps_the_file(lkapi, egress_api, publishers, room_name, egress_server):
    from pyegress.devtools.process import free_port

    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1)
    final = await record(egress_api, room_name, api.EncodedFileOutput(
        filepath="{room_name}/kept.mp4", s3=upload_to(f"http://127.0.0.1:{free_port()}")), 3)
    assert final.status == S.EGRESS_COMPLETE and final.backup_storage_used
    (result,) = final.file_results
    assert Path(result.location) == egress_server.recordings_dir.resolve() / room_name / "kept.mp4"
    assert ffprobe(result.location).stream("video")["codec_name"] == "h264"


async def test_upload_through_a_proxy(lkapi, egress_api, publishers, room_name, s3, egress_server, tmp_path):
    """S3Upload.proxy (url, username, password): every request goes through a real forward proxy
    (tinyproxy with basic auth); a wrong password fails the upload, and the file is kept locally."""
    from support.http_proxy import HttpProxy

    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1)
    with HttpProxy(tmp_path / "proxy", password=SECRET) as proxy:
        up = upload_to(s3.endpoint)
        up.proxy.CopyFrom(api.ProxyConfig(url=proxy.url, username=proxy.username, password=SECRET))
        final = await record(egress_api, room_name, api.EncodedFileOutput(filepath="{room_name}/proxied.mp4", s3=up), 3)
        assert final.status == S.EGRESS_COMPLETE and not final.backup_storage_used, final.error
        key = f"{room_name}/proxied.mp4"
        assert any(line.startswith("PUT ") and f"{s3.endpoint}/recordings/{key}" in line for line in proxy.requests()), \
            proxy.requests()
        assert len(bytes(obstore.get(bucket(s3), key).bytes())) == final.file_results[0].size
        assert final.room_composite.file_outputs[0].s3.proxy.password == ""  # not echoed
        assert final.room_composite.file_outputs[0].s3.proxy.url == proxy.url

        up.proxy.password = "wrong"
        refused = await record(egress_api, room_name, api.EncodedFileOutput(filepath="{room_name}/refused.mp4",
                                                                            s3=up), 2)
        assert refused.status == S.EGRESS_COMPLETE and refused.backup_storage_used
        assert any("refused.mp4" in line for line in proxy.requests())  # it went to the proxy, which said no
        with pytest.raises(FileNotFoundError):
            obstore.head(bucket(s3), f"{room_name}/refused.mp4")
        assert Path(refused.file_results[0].location).exists()
    for log in [egress_server.workdir / "server.log", *egress_server.workdir.glob("logs/*.log")]:
        assert SECRET not in log.read_text(errors="replace"), log


async def test_storage_errors_name_the_field(lkapi, egress_api, room_name):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    for request, fragment in (
            (dict(file_outputs=[api.EncodedFileOutput(s3=api.S3Upload(region="x"))]), "file_outputs[0].s3.bucket"),
            (dict(file_outputs=[api.EncodedFileOutput(s3=api.S3Upload(bucket="b", endpoint="ftp://x"))]),
             "file_outputs[0].s3.endpoint"),
            (dict(file_outputs=[api.EncodedFileOutput(gcp=api.GCPUpload(credentials="{}"))]),
             "file_outputs[0].gcp.bucket"),
            (dict(file_outputs=[api.EncodedFileOutput(s3=api.S3Upload(bucket="b", proxy=api.ProxyConfig(
                url="socks5://127.0.0.1:1080")))]), "file_outputs[0].s3.proxy.url"),
            (dict(file_outputs=[api.EncodedFileOutput(gcp=api.GCPUpload(bucket="b", credentials="not json"))]),
             "file_outputs[0].gcp.credentials"),
            (dict(segment_outputs=[api.SegmentedFileOutput(azure=api.AzureBlobUpload(account_name="a"))]),
             "segment_outputs[0].azure.container_name"),
            (dict(image_outputs=[api.ImageOutput(aliOSS=api.AliOSSUpload(region="cn-hangzhou"))]),
             "image_outputs[0].aliOSS.bucket")):
        with pytest.raises(api.TwirpError) as e:
            await egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
                room_name=room_name, **request))
        assert e.value.code == "invalid_argument" and fragment in e.value.message, e.value.message
    for request, fragment in ((dict(storage=api.StorageConfig(s3=api.S3Upload(region="x"))), "storage.s3.bucket"),
                              (dict(outputs=[api.Output(file=api.FileOutput(), storage=api.StorageConfig(
                                  gcp=api.GCPUpload()))]), "outputs[0].storage.gcp.bucket")):
        with pytest.raises(api.TwirpError) as e:
            await egress_api.egress.start_egress(api.StartEgressRequest(
                room_name=room_name, template=api.TemplateSource(layout="grid"),
                **({"outputs": [api.Output(file=api.FileOutput())]} | request)))
        assert e.value.code == "invalid_argument" and fragment in e.value.message, e.value.message
