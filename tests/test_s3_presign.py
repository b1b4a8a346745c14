"""Presigned downloads and deletes on a real S3-compatible server (SeaweedFS on loopback): what the
recordings API (docs/wire.md) hands out as ``downloadUrl`` for uploaded recordings and removes on DELETE."""

from __future__ import annotations

import time
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import obstore
import pytest

from support.s3_server import S3Server
from pyegress.storage.s3 import S3Storage


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    keys = ("AKIDEXAMPLE", "presign-secret")
    with S3Server(tmp_path_factory.mktemp("s3-presign"), credentials=keys) as s3:  # signatures are checked
        target = S3Storage(bucket="recordings", endpoint=s3.endpoint, region="us-east-1", force_path_style=True,
                          access_key=keys[0], secret=keys[1])
        yield target  # S3Server.start returns once SeaweedFS accepts writes


def test_presigned_url_downloads_until_it_expires(target):
    obstore.put(target.store(), "room/a.mp4", b"recorded bytes")
    url = target.presign("room/a.mp4", 60)
    assert url.startswith(target.endpoint) and "presign-secret" not in url
    assert httpx.get(url).content == b"recorded bytes"

    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query["X-Amz-Signature"] = "0" * len(query["X-Amz-Signature"])
    assert httpx.get(parts._replace(query=urlencode(query)).geturl()).status_code == 403

    short = target.presign("room/a.mp4", 1)
    time.sleep(2.5)
    assert httpx.get(short).status_code == 403


def test_delete_removes_the_object_and_tolerates_a_missing_one(target):
    obstore.put(target.store(), "room/b.mp4", b"x")
    url = target.presign("room/b.mp4", 60)
    target.delete("room/b.mp4")
    assert httpx.get(url).status_code == 404
    target.delete("room/b.mp4")  # already gone: not an error


def test_wrong_credentials_are_refused(target):
    wrong = target.model_copy(update={"secret": "not-it"})
    assert httpx.get(wrong.presign("room/a.mp4", 60)).status_code == 403

