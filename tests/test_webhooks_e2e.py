"""LiveKit webhooks for egress events: signed so livekit-api's WebhookReceiver accepts them, retried."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from livekit import api

from conftest import wait_status

S = api.EgressStatus


class Receiver:
    """An HTTP server on loopback that records webhook POSTs; answers 500 to the first ``fail_first``."""

    def __init__(self, fail_first: int = 0, port: int = 0) -> None:
        self.requests: list[tuple[str, str, str]] = []  # body, Authorization, Content-Type
        self.fail_first = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                if receiver.fail_first > 0:
                    receiver.fail_first -= 1
                    self.send_response(500)
                else:
                    receiver.requests.append((body, self.headers["Authorization"], self.headers["Content-Type"]))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, livekit) -> list[api.WebhookEvent]:
        receiver = api.WebhookReceiver(api.TokenVerifier(livekit.api_key, livekit.api_secret))
        return [receiver.receive(body, auth) for body, auth, _ in self.requests]

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


async def wait_for_events(receiver: Receiver, livekit, egress_id: str, last: str, timeout_s: float = 30):
    for _ in range(int(timeout_s * 10)):
        events = [e for e in receiver.events(livekit) if e.egress_info.egress_id == egress_id]
        if events and events[-1].event == last:
            return events
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {last} webhook: {[e.event for e in receiver.events(livekit)]}")


async def test_egress_webhooks_are_signed_and_complete(lkapi, egress_api, publishers, room_name, receiver, livekit):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1)
    info = await egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
        room_name=room_name, file_outputs=[api.EncodedFileOutput(filepath="hooked.mp4")],
        webhooks=[api.WebhookConfig(url=receiver.url)]))
    await wait_status(egress_api, info.egress_id, lambda i: i.status == S.EGRESS_ACTIVE)
    await asyncio.sleep(2)
    await egress_api.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
    events = await wait_for_events(receiver, livekit, info.egress_id, "egress_ended")
    assert [(e.event, S.Name(e.egress_info.status)) for e in events] == [
        ("egress_started", "EGRESS_STARTING"), ("egress_updated", "EGRESS_ACTIVE"),
        ("egress_updated", "EGRESS_ENDING"), ("egress_ended", "EGRESS_COMPLETE")]
    assert len({e.id for e in events}) == 4 and all(e.created_at > 0 for e in events)
    assert events[-1].egress_info.file_results[0].filename == "hooked.mp4"
    assert all(ctype == "application/webhook+json" for _, _, ctype in receiver.requests)
    # a tampered body does not validate
    body, auth, _ = receiver.requests[0]
    with pytest.raises(Exception, match="hash mismatch"):
        api.WebhookReceiver(api.TokenVerifier(livekit.api_key, livekit.api_secret)).receive(
            body.replace("egress_started", "egress_ended"), auth)


async def test_failed_deliveries_are_retried_and_listed(lkapi, egress_api, publishers, room_name, livekit,
                                                        egress_server):
    receiver = Receiver(fail_first=2)
    try:
        await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
        publishers(room_name, 1)
        info = await egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
            room_name=room_name, file_outputs=[api.EncodedFileOutput(filepath="retried.mp4")],
            webhooks=[api.WebhookConfig(url=receiver.url)]))
        await wait_status(egress_api, info.egress_id, lambda i: i.status == S.EGRESS_ACTIVE)
        await egress_api.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
        events = await wait_for_events(receiver, livekit, info.egress_id, "egress_ended", timeout_s=40)
        assert [e.event for e in events][0] == "egress_started"  # the first one got through on its third try
    finally:
        receiver.close()
    out = subprocess.run([sys.executable, "-m", "pyegress", "webhooks", "list", "--egress-id", info.egress_id],
                         env=egress_server.env | {"COLUMNS": "300"}, capture_output=True, text=True,
                         check=True).stdout
    assert "egress_started" in out and "egress_ended" in out and "HTTP 500" in out


async def test_pending_webhooks_survive_a_restart(lkapi, publishers, room_name, livekit, tmp_path):
    from pyegress.devtools.process import free_port
    from pyegress.devtools.pyegress_server import PyegressServer

    port = free_port()  # nobody listens there yet
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1)
    env = {"PYEGRESS_WEBHOOK_URLS": f"http://127.0.0.1:{port}/hook"}
    with PyegressServer(tmp_path / "svc", livekit.url, livekit.api_key, livekit.api_secret, extra_env=env) as server:
        async with api.LiveKitAPI(server.url, livekit.api_key, livekit.api_secret) as egress_api:
            info = await egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
                room_name=room_name, file_outputs=[api.EncodedFileOutput(filepath="restart.mp4")]))
            await wait_status(egress_api, info.egress_id, lambda i: i.status == S.EGRESS_ACTIVE)
            await egress_api.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
            await wait_status(egress_api, info.egress_id, lambda i: i.status == S.EGRESS_COMPLETE)
    receiver = Receiver(port=port)
    try:
        with PyegressServer(tmp_path / "svc", livekit.url, livekit.api_key, livekit.api_secret, extra_env=env):
            events = await wait_for_events(receiver, livekit, info.egress_id, "egress_ended", timeout_s=30)
    finally:
        receiver.close()
    assert [e.event for e in events] == ["egress_started", "egress_updated", "egress_updated", "egress_ended"]
