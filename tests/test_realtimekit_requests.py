"""RealtimeKit request bodies → the LiveKit egress requests pyegress runs, checked by pyegress's own resolver."""

from __future__ import annotations

import pytest

from pyegress.errors import EgressError
from pyegress.dialects.realtimekit import CompositeStart, StorageConfig, composite_requests, storage_target
from pyegress.service.requests import resolve_encoding, resolve_outputs


def resolved(body: dict, tmp_path):
    """``[(role, encoding, file target)]`` as the egress service would resolve each request of ``body``."""
    out = []
    for request, role in composite_requests(CompositeStart.model_validate(body), "rid"):
        encoding = resolve_encoding(request)
        outputs = resolve_outputs(request, root=tmp_path, values={"room_name": request.room_name},
                                  audio=True, video=not request.audio_only, encoding=encoding)
        out.append((role, encoding, outputs.files[0]))
    return out


def test_codecs_map_to_containers(tmp_path):
    ((role, enc, f),) = resolved({"meeting_id": "m", "file_name_prefix": "p"}, tmp_path)
    assert (role, f.filename, f.format, enc.video_codec, enc.audio_codec, enc.width) == \
        ("main", "m/p_rid.mp4", "mp4", "h264_main", "aac", 1280)
    ((_, enc, f),) = resolved({"meeting_id": "m", "video_config": {"codec": "VP8", "width": 640, "height": 480}},
                              tmp_path)
    assert (f.filename, f.format, enc.video_codec, enc.audio_codec, enc.height) == \
        ("m/rid.webm", "webm", "vp8", "opus", 480)
    (_, (role, enc, f)) = resolved({"meeting_id": "m", "audio_config": {"codec": "MP3", "export_file": True}},
                                   tmp_path)
    assert (role, f.filename, f.format, enc.audio_codec) == ("audio", "m/rid.mp3", "mp3", "mp3")
    (_, (_, enc, f)) = resolved({"meeting_id": "m", "audio_config": {"export_file": True}}, tmp_path)
    assert (f.filename, f.format, enc.audio_codec) == ("m/rid.m4a", "mp4", "aac")


def test_storage_config_maps_to_each_destination(tmp_path):
    config = {"type": "digitalocean", "access_key": "AK", "secret": "SK", "bucket": "b", "region": "nyc3",
              "path": "/rec/"}
    spaces = storage_target(StorageConfig.model_validate(config))
    assert (spaces.kind, spaces.endpoint, spaces.bucket, spaces.region, spaces.access_key, spaces.secret) == \
        ("s3", "https://nyc3.digitaloceanspaces.com", "b", "nyc3", "AK", "SK")
    assert StorageConfig.model_validate(config).public() == {"type": "digitalocean", "bucket": "b",
                                                             "region": "nyc3", "path": "/rec/"}
    aws = storage_target(StorageConfig.model_validate(config | {"type": "aws"}))
    assert (aws.kind, aws.endpoint, aws.region) == ("s3", "", "nyc3")
    gcs = storage_target(StorageConfig.model_validate({"type": "gcs", "bucket": "g", "secret": '{"k": 1}'}))
    assert (gcs.kind, gcs.bucket, gcs.credentials_json) == ("gcs", "g", '{"k": 1}')
    azure = storage_target(StorageConfig.model_validate({"type": "azure", "access_key": "acct", "secret": "key",
                                                         "bucket": "box"}))
    assert (azure.kind, azure.account_name, azure.account_key, azure.container_name) == \
        ("azure", "acct", "key", "box")
    sftp = storage_target(StorageConfig.model_validate({"type": "sftp", "host": "h", "port": 2222,
                                                        "username": "u", "password": "pw"}))
    assert (sftp.kind, sftp.host, sftp.port, sftp.username, sftp.password, sftp.private_key) == \
        ("sftp", "h", 2222, "u", "pw", "")
    keyed = storage_target(StorageConfig.model_validate({"type": "sftp", "host": "h", "username": "u",
                                                         "auth_method": "KEY", "private_key": "PEM",
                                                         "password": "unlock"}))
    assert (keyed.port, keyed.password, keyed.private_key, keyed.passphrase) == (22, "", "PEM", "unlock")
    # the object keys: [path/][prefix_]<id>.<ext>
    ((_, _, f),) = resolved({"meeting_id": "m", "storage_config": config | {"type": "aws"}}, tmp_path)
    assert f.filename == "rec/rid.mp4"


@pytest.mark.parametrize("config, field", [
    ({"type": "gcs", "bucket": "b"}, "storage_config.secret"),
    ({"type": "sftp", "host": "h", "password": "p"}, "storage_config.username"),
    ({"type": "sftp", "host": "h", "username": "u", "auth_method": "KEY"}, "storage_config.private_key"),
    ({"type": "azure", "access_key": "a", "secret": "s"}, "storage_config.bucket"),
    ({"type": "aws", "bucket": "b", "access_key": "a", "secret": "s"}, "storage_config.region"),
    ({"type": "digitalocean", "region": "nyc3", "access_key": "a", "secret": "s"}, "storage_config.bucket"),
])
def test_storage_config_refusals_name_the_field(config, field):
    with pytest.raises(EgressError) as e:
        storage_target(StorageConfig.model_validate(config))
    assert e.value.code == "invalid_argument" and e.value.meta["argument"] == field


def test_url_renders_a_custom_page(tmp_path):
    ((request, role),) = composite_requests(CompositeStart.model_validate(
        {"meeting_id": "m", "url": "https://app.example/recorder"}), "rid")
    assert role == "main" and request.custom_base_url == "https://app.example/recorder"
    with pytest.raises(EgressError) as e:
        composite_requests(CompositeStart.model_validate({"meeting_id": "m", "url": "file:///etc/passwd"}), "rid")
    assert e.value.meta["argument"] == "url"
