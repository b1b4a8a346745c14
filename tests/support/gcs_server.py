"""A GCS server for tests: PyPI ``gcp-storage-emulator`` on loopback, run as ``python
tests/support/gcs_server.py``.

obstore (Rust ``object_store``) speaks GCS's XML API for objects. The emulator
stores and serves XML-API PUTs and GETs, but leaves out four things the real
XML API has (cloud.google.com/storage/docs/xml-api): the ``ETag`` header of a
PUT reply, ``ETag``/``Last-Modified`` on object reads, ``HEAD`` and ``DELETE``. This
module adds exactly those; XML multipart uploads (objects > 5 MiB put by
obstore) stay unsupported, so tests keep GCS objects small.
"""

from __future__ import annotations

import argparse
import base64
import email.utils
import io
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from pyegress.devtools.process import ServerProcess, free_port, http_ok


class GCSServer(ServerProcess):
    """The emulator with ``bucket`` at :attr:`endpoint`; data under ``workdir`` (kept across stop/start,
    on the same port)."""

    name = "gcs-emulator"

    def __init__(self, workdir: Path, bucket: str = "recordings") -> None:
        self.workdir = Path(workdir)
        self.bucket = bucket
        self.port = free_port()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def credentials_json(self) -> str:
        """A service-account key without a key: obstore then sends no OAuth token (``disable_oauth``)."""
        return ('{"disable_oauth": true, "client_email": "", "private_key": "", "private_key_id": "", '
                f'"gcs_base_url": "{self.endpoint}"}}')

    def start(self, timeout_s: float = 30.0) -> "GCSServer":
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._spawn([sys.executable, __file__, "--port", str(self.port),
                     "--data", str(self.workdir / "data"), "--bucket", self.bucket],
                    lambda: http_ok(f"{self.endpoint}/"), timeout_s,
                    stdout=open(self.workdir / "gcs.log", "ab"), stderr=subprocess.STDOUT)
        return self


def _serve(port: int, data: str, bucket: str) -> None:
    from gcp_storage_emulator import server
    from gcp_storage_emulator.handlers import objects

    def object_headers(request, response, storage) -> None:
        try:
            obj = storage.get_file_obj(request.params["bucket_name"], request.params["object_id"])
        except Exception:  # not found: the handler already answered 404
            return
        response["ETag"] = '"{}"'.format(base64.b64decode(obj["md5Hash"]).hex())
        updated = datetime.fromisoformat(obj["updated"].replace("Z", "+00:00"))
        response["Last-Modified"] = email.utils.format_datetime(updated, usegmt=True)

    def with_object_headers(handler):
        def wrapped(request, response, storage, *args, **kwargs):
            handler(request, response, storage, *args, **kwargs)
            if response.status.value < 300:
                object_headers(request, response, storage)
        return wrapped

    patched = {objects.xml_upload: with_object_headers(objects.xml_upload),
               objects.download: with_object_headers(objects.download)}
    routes = []
    for regex, handlers in server.HANDLERS:
        handlers = {m: patched.get(h, h) for m, h in handlers.items()}
        if handlers.get(server.PUT) is patched[objects.xml_upload]:
            handlers[server.DELETE] = objects.delete  # the XML API's object DELETE
        routes.append((regex, handlers))
    server.HANDLERS = tuple(routes)

    def do_HEAD(self) -> None:  # a GET whose body is dropped once the headers are out
        end_headers = self.end_headers

        def headers_then_discard() -> None:
            end_headers()
            self.wfile = io.BytesIO()
        self.end_headers = headers_then_discard
        server.Router(self).handle(server.GET)

    server.RequestHandler.do_HEAD = do_HEAD
    emulator = server.create_server("127.0.0.1", port, in_memory=False, default_bucket=bucket, data_dir=data)
    emulator.run()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--bucket", default="recordings")
    args = parser.parse_args()
    _serve(args.port, args.data, args.bucket)
