"""Every storage destination against a real server on loopback (SeaweedFS S3, the GCS emulator, Azurite,
an SFTP server): upload, location, presigned download, delete; streamed multipart uploads; the upload
queue's backup; config blocks; secrets kept out of echoed requests."""

from __future__ import annotations

import contextlib
import json
import threading
import time

import httpx
import obstore
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from livekit import api

from support.azure_server import ACCOUNT_KEY, ACCOUNT_NAME, AzureServer
from support.gcs_server import GCSServer
from pyegress.devtools.process import free_port
from support.s3_server import S3Server
from support.sftp_server import SFTPServer
from pyegress.service.requests import redacted_request
from pyegress.storage import AzureStorage, GCSStorage, S3Storage, SFTPStorage, from_config
from pyegress.storage.uploads import StreamedUpload, UploadQueue


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    root = tmp_path_factory.mktemp("storage")
    s3, gcs, azure, sftp = S3Server(root / "s3"), GCSServer(root / "gcs"), AzureServer(root / "azure"), \
        SFTPServer(root / "sftp")
    with contextlib.ExitStack() as started:  # those started stop even when a later one cannot start
        for server in (s3, gcs, azure, sftp):
            started.enter_context(server)
        azure.create_container("recordings")
        yield {"s3": s3, "gcs": gcs, "azure": azure, "sftp": sftp}


def targets(servers, prefix: str = "") -> dict:
    s3, gcs, azure, sftp = (servers[k] for k in ("s3", "gcs", "azure", "sftp"))
    return {
        "s3": S3Storage(bucket="recordings", endpoint=s3.endpoint, force_path_style=True, access_key="k",
                       secret="s", prefix=prefix),
        "gcs": GCSStorage(bucket="recordings", endpoint=gcs.endpoint, credentials_json=gcs.credentials_json,
                         prefix=prefix),
        "azure": AzureStorage(account_name=ACCOUNT_NAME, account_key=ACCOUNT_KEY, container_name="recordings",
                             endpoint=azure.endpoint, prefix=prefix),
        "sftp": SFTPStorage(host="127.0.0.1", port=sftp.port, username=sftp.username, password=sftp.password,
                           host_key=sftp.host_key, base_path="/uploads", prefix=prefix),
    }


@pytest.mark.parametrize("kind", ["s3", "gcs", "azure", "sftp"])
def test_upload_location_presign_delete(servers, kind, tmp_path):
    target = targets(servers, prefix="egress/")[kind]
    data = bytes(range(256)) * 4000
    (tmp_path / "clip.mp4").write_bytes(data)
    location = target.upload(tmp_path / "clip.mp4", "room/clip.mp4", attempts=1)
    assert (tmp_path / "clip.mp4").exists()  # the caller deletes, once it has the location
    if kind == "sftp":
        assert location == f"sftp://egress@127.0.0.1:{servers['sftp'].port}/uploads/egress/room/clip.mp4"
        stored = servers["sftp"].root / "uploads/egress/room/clip.mp4"
        assert stored.read_bytes() == data and not list(stored.parent.glob("*.part"))
        assert target.presign("room/clip.mp4", 60) is None
        target.delete("room/clip.mp4")
        assert not stored.exists()
        return
    base = {"s3": f"{servers['s3'].endpoint}/recordings", "gcs": f"{servers['gcs'].endpoint}/recordings",
            "azure": f"{servers['azure'].endpoint}/recordings"}[kind]
    assert location == f"{base}/egress/room/clip.mp4"
    head = obstore.head(target.store(), "egress/room/clip.mp4")
    assert head["size"] == len(data)
    if kind == "gcs":  # the emulator cannot check a V4 signature: sign with a real key, fetch plainly
        assert httpx.get(location).content == data
    else:
        url = target.presign("room/clip.mp4", 60)
        assert url.startswith(base) and ("X-Amz-Signature" in url or "sig=" in url)
        assert httpx.get(url).content == data
    target.delete("room/clip.mp4")
    with pytest.raises(FileNotFoundError):
        obstore.head(target.store(), "egress/room/clip.mp4")


def test_gcs_presign_signs_with_the_service_account_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    target = GCSStorage(bucket="recordings", credentials_json=json.dumps(
        {"type": "service_account", "client_email": "egress@example.iam.gserviceaccount.com", "private_key": pem,
         "private_key_id": "1"}))
    url = target.presign("room/clip.mp4", 3600)
    assert url.startswith("https://storage.googleapis.com/recordings/room/clip.mp4?")
    assert "X-Goog-Signature=" in url and "X-Goog-Expires=3600" in url
    assert target.location("room/clip.mp4") == "https://storage.googleapis.com/recordings/room/clip.mp4"


@pytest.mark.parametrize("kind", ["s3", "azure"])
def test_streamed_upload_of_a_growing_file(servers, kind, tmp_path):
    """Written in 1 MiB steps while streaming with 5 MiB parts: the object is complete and equal."""
    target = targets(servers)[kind]
    path = tmp_path / "growing.mp4"
    path.write_bytes(b"")
    streamed = StreamedUpload(target, path, "stream/growing.mp4", poll_s=0.05, buffer_size=5 * 1024 * 1024)
    chunks = [bytes([i]) * (1024 * 1024) for i in range(13)]
    with open(path, "ab") as f:
        for chunk in chunks:
            f.write(chunk)
            f.flush()
            time.sleep(0.02)
    assert streamed.finish()
    assert bytes(obstore.get(target.store(), "stream/growing.mp4").bytes()) == b"".join(chunks)
    assert [(t.storage, t.bytes) for t in streamed.stats.totals()] == [(kind, 13 * 1024 * 1024)]


def test_streamed_upload_detects_a_rewritten_file(servers, tmp_path):
    target = targets(servers)["s3"]
    path = tmp_path / "rewritten.mp4"
    path.write_bytes(b"a" * 100_000)
    streamed = StreamedUpload(target, path, "stream/rewritten.mp4", poll_s=0.05)
    time.sleep(0.3)
    with open(path, "r+b") as f:  # a muxer going back to patch its header
        f.write(b"HEAD")
    assert not streamed.finish()


def test_queue_uses_backup_when_the_destination_is_down_for_good(servers, tmp_path):
    dead = S3Storage(bucket="recordings", endpoint=f"http://127.0.0.1:{free_port()}", force_path_style=True,
                    access_key="k", secret="s")
    backup = targets(servers)["sftp"]
    queue = UploadQueue(attempts=2, base_delay_s=0.05, backup=backup)
    for name in ("a.ts", "b.ts"):
        (tmp_path / name).write_bytes(name.encode() * 1000)
        queue.submit(dead, tmp_path / name, f"hls/{name}")
    queue.drain()
    assert queue.backup_used
    assert queue.location(dead, "hls/a.ts") == backup.location("hls/a.ts")
    assert (servers["sftp"].root / "uploads/hls/b.ts").read_bytes() == b"b.ts" * 1000
    assert not (tmp_path / "a.ts").exists()  # deleted: the backup confirmed it
    # a.ts had 2 tries, then the destination counts as down: b.ts got 1 (metrics, docs/metrics.md)
    assert {t.storage: (t.bytes, t.retries, t.failures, t.backup_writes) for t in queue.stats.totals()} == \
        {"s3": (0, 1, 2, 0), "sftp": (8000, 0, 0, 2)}

    alone = UploadQueue(attempts=1, base_delay_s=0.05)
    (tmp_path / "c.ts").write_bytes(b"c")
    alone.submit(dead, tmp_path / "c.ts", "hls/c.ts")
    alone.drain()
    assert alone.backup_used and alone.location(dead, "hls/c.ts") == str((tmp_path / "c.ts").resolve())
    assert (tmp_path / "c.ts").exists()


def test_queue_waits_for_a_server_that_comes_back(tmp_path):
    late = S3Server(tmp_path / "late")
    target = S3Storage(bucket="recordings", endpoint=late.endpoint, force_path_style=True, access_key="k", secret="s")
    (tmp_path / "seg.ts").write_bytes(b"x" * 5000)
    queue = UploadQueue(attempts=8, base_delay_s=0.2)
    queue.submit(target, tmp_path / "seg.ts", "hls/seg.ts")
    comes_back = threading.Timer(0.5, late.start)
    comes_back.start()
    try:
        queue.drain()
        comes_back.join()
        assert not queue.backup_used
        assert obstore.head(target.store(), "hls/seg.ts")["size"] == 5000
        (totals,) = queue.stats.totals()
        assert totals.bytes == 5000 and totals.retries >= 1 and not totals.failures
    finally:
        comes_back.join()
        late.stop()


def test_config_blocks_in_livekit_shape():
    s3 = from_config({"prefix": "recordings/", "s3": {
        "access_key": "AK", "secret": "SK", "region": "eu-west-1", "bucket": "b", "force_path_style": True,
        "endpoint": "https://minio.example", "max_retries": 5,
        "proxy_config": {"url": "http://proxy:3128", "username": "u", "password": "p w"}}})
    assert isinstance(s3, S3Storage) and s3.key("room/a.mp4") == "recordings/room/a.mp4"
    assert s3.proxy == "http://u:p%20w@proxy:3128" and "p%20w" not in repr(s3)
    with pytest.raises(ValueError, match=r"storage\.s3\.proxy_config\.url"):
        from_config({"s3": {"bucket": "b", "proxy_config": {"url": "socks5://proxy"}}})
    assert s3.location("room/a.mp4") == "https://minio.example/b/recordings/room/a.mp4"
    oss = from_config({"alioss": {"access_key": "AK", "secret": "SK", "bucket": "b", "region": "cn-shanghai"}})
    assert isinstance(oss, S3Storage) and oss.location("a.mp4") == "https://b.oss-cn-shanghai.aliyuncs.com/a.mp4"
    oss = from_config({"alioss": {"bucket": "b", "endpoint": "oss-eu-central-1.aliyuncs.com"}})
    assert oss.location("a.mp4") == "https://b.oss-eu-central-1.aliyuncs.com/a.mp4"  # no scheme: https
    gcs = from_config({"gcp": {"credentials_json": "{}", "bucket": "g"}})
    assert gcs.location("a.mp4") == "https://storage.googleapis.com/g/a.mp4"
    azure = from_config({"azure": {"account_name": "acct", "account_key": "k", "container_name": "c"}})
    assert azure.location("a.mp4") == "https://acct.blob.core.windows.net/c/a.mp4"
    assert from_config(None) is None and from_config({"prefix": "x"}) is None
    with pytest.raises(ValueError, match=r"backup\.azure\.container_name"):
        from_config({"azure": {"account_name": "acct"}}, "backup")
    with pytest.raises(ValueError, match="set one of"):
        from_config({"s3": {"bucket": "b"}, "gcp": {"bucket": "g"}})
    assert "SK" not in repr(s3) and "SK" not in str(s3)  # secrets stay out of logs


def test_s3_retry_settings_of_the_livekit_config(monkeypatch, tmp_path):
    """``storage.s3.max_retries`` / ``min_retry_delay`` / ``max_retry_delay`` (Go durations) set the tries
    and waits of every upload, unless pyegress's own settings say otherwise; the waits double up to the cap."""
    from pyegress.config import Settings
    from pyegress.storage.base import Storage

    monkeypatch.setenv("EGRESS_CONFIG_BODY", "storage:\n  s3:\n    bucket: b\n    max_retries: 4\n"
                                             "    min_retry_delay: 250ms\n    max_retry_delay: 1s\n")
    settings = Settings()
    assert (settings.upload_attempts, settings.upload_retry_base_s, settings.upload_retry_max_s) == (4, 0.25, 1.0)
    monkeypatch.setenv("PYEGRESS_UPLOAD_ATTEMPTS", "2")
    assert Settings().upload_attempts == 2  # set explicitly: kept
    monkeypatch.setenv("EGRESS_CONFIG_BODY", "storage:\n  s3:\n    bucket: b\n    min_retry_delay: soon\n")
    with pytest.raises(ValueError, match=r"storage\.s3\.min_retry_delay"):
        Settings()

    class Failing(Storage):  # a destination that always fails, to see the waits between tries
        def _put(self, path, key):
            raise OSError("down")

        def describe(self):
            return "nowhere"

    waits = []
    monkeypatch.setattr("pyegress.storage.base.time.sleep", waits.append)
    (tmp_path / "a.ts").write_bytes(b"x")
    with pytest.raises(OSError):
        Failing().upload(tmp_path / "a.ts", "a.ts", attempts=settings.upload_attempts,
                         base_delay_s=settings.upload_retry_base_s, max_delay_s=settings.upload_retry_max_s)
    assert waits == [0.25, 0.5, 1.0]


def test_redacted_request_drops_every_storage_secret():
    secrets = ["S3-SECRET", "S3-ACCESS", "S3-SESSION", "GCP-CREDENTIALS", "AZURE-KEY", "OSS-SECRET", "OSS-ACCESS",
               "PROXY-PASSWORD"]
    s3 = api.S3Upload(bucket="b", access_key="S3-ACCESS", secret="S3-SECRET", session_token="S3-SESSION",
                      proxy=api.ProxyConfig(url="http://proxy", password="PROXY-PASSWORD"))
    gcp = api.GCPUpload(bucket="g", credentials="GCP-CREDENTIALS")
    azure = api.AzureBlobUpload(account_name="a", account_key="AZURE-KEY", container_name="c")
    oss = api.AliOSSUpload(bucket="o", access_key="OSS-ACCESS", secret="OSS-SECRET")
    composite = api.RoomCompositeEgressRequest(
        room_name="r", file_outputs=[api.EncodedFileOutput(s3=s3)], segment_outputs=[api.SegmentedFileOutput(gcp=gcp)],
        image_outputs=[api.ImageOutput(azure=azure)])
    unified = api.StartEgressRequest(room_name="r", storage=api.StorageConfig(aliOSS=oss), outputs=[
        api.Output(file=api.FileOutput(), storage=api.StorageConfig(s3=s3)),
        api.Output(segments=api.SegmentedFileOutput(), storage=api.StorageConfig(azure=azure))])
    track = api.TrackEgressRequest(room_name="r", track_id="TR", file=api.DirectFileOutput(gcp=gcp))
    for request in (composite, unified, track):
        echoed = redacted_request(request)
        wire = echoed.SerializeToString()
        assert not [s for s in secrets if s.encode() in wire], echoed
    assert redacted_request(composite).file_outputs[0].s3.proxy.url == "http://proxy"  # the rest is echoed
