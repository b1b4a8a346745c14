"""The fuzz part of the suite (issue 12): no request may make pyegress answer 5xx.

- ``schemathesis`` over ``/openapi.json``: every REST route (RTCstack, the recordings API, RealtimeKit,
  downloads) with generated parameters and bodies, authorized with a roomRecord token;
- a Twirp fuzzer over every ``livekit.Egress`` method: requests built at random from the livekit-protocol
  descriptors (strings from a list of known troublemakers, numbers at their limits, unknown enum values),
  sent as binary protobuf and as JSON, many of them mutated (flipped bytes, truncation, wrong JSON types,
  deep nesting, unknown keys).

Nor may a request reach the app's catch-all for parsing errors (logged "reached the edge unchecked"):
every refusal comes from its dialect's own checks. Bounded to about a minute each on two cores;
``FUZZ_SEED`` / ``FUZZ_CASES`` change the Twirp fuzzer's seed and cases per method
and encoding (a failure names its seed and case). The server runs with a Chromium that exits at once,
so a web egress the fuzzer happens to start ends by itself; rooms named by the fuzzer do not exist, so
no room is recorded.
"""

from __future__ import annotations

import json
import math
import os
import random
import time

import httpx
import pytest
import schemathesis
from schemathesis import GenerationMode
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from livekit.protocol import egress as eg

from conftest import EMPTY_TIMEOUT_S
from pyegress.devtools.pyegress_server import PyegressServer
from test_api_security import bearer

pytestmark = pytest.mark.fuzz

SEED = int(os.environ.get("FUZZ_SEED", "20261204"))
CASES = int(os.environ.get("FUZZ_CASES", "300"))
TIME_BUDGET_S = 75.0  # for the whole Twirp fuzzer; what is left after it is skipped, not failed
MAX_STARTS = 20  # egresses the fuzzer may start (each is a worker process) before it stops using seeds
TWIRP = "/twirp/livekit.Egress/"
METHODS = {m.name: message_factory.GetMessageClass(m.input_type)
           for m in eg.DESCRIPTOR.services_by_name["Egress"].methods}
#: Strings that have broken or could break something: unparseable URLs, escapes, placeholders, long names,
#: control characters, non-ASCII, numbers as text.
STRINGS = ["", "a", "grid", "speaker-dark", "single-speaker", "EG_fuzz", "TR_fuzz", "fuzz-room", "../escape.mp4",
           "/tmp/abs.m3u8", "//tmp/x.ts", "a/../../b.mp4", "{room_name}/{time}.mp4", "{track_id}-{utc}", "x" * 300,
           "http://[::1", "http://127.0.0.1:1/page", "https://", "rtmp://[", "rtmp://127.0.0.1:1/live/key",
           "rtmps://h", "srt://h:99999", "srt://127.0.0.1:1?streamid=x", "ws://[", "ws://127.0.0.1:1", "wss://",
           "s3://bucket", "file:///etc/passwd", "\x00", "\x1f", "é🙂", "%s%n%x", "null", "[", "{}", "-1", "9" * 40,
           '{"gcs_base_url": "http://[::1"}', '{"type": "service_account"}', "*", "\\", ".", ".."]
_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-2**31, 2**31 - 1), FieldDescriptor.TYPE_SINT32: (-2**31, 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-2**31, 2**31 - 1), FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1), FieldDescriptor.TYPE_INT64: (-2**63, 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-2**63, 2**63 - 1), FieldDescriptor.TYPE_SFIXED64: (-2**63, 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1), FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
JUNK = [None, True, -1, 0, 1e308, "x", "", [], {}, [[[[[]]]]], {"a": {"b": {}}}, "\ud800", 2**70, -(2**70)]


@pytest.fixture(scope="module")
def fuzz_server(livekit, tmp_path_factory):
    with PyegressServer(tmp_path_factory.mktemp("fuzz"), livekit.url, livekit.api_key, livekit.api_secret,
                        extra_env={"PYEGRESS_EMPTY_TIMEOUT_S": str(EMPTY_TIMEOUT_S),
                                   "PYEGRESS_CHROMIUM": "/bin/false"}) as server:
        yield server


def assert_every_error_was_checked(server: PyegressServer) -> None:
    """No request reached the catch-all for parsing errors (a 400 that names no field): each was refused
    by its dialect's own checks."""
    unchecked = [line for line in (server.workdir / "server.log").read_text(errors="replace").splitlines()
                 if "reached the edge unchecked" in line]
    assert not unchecked, "\n".join(unchecked[:20])


# ---- schemathesis over the REST dialects -------------------------------------------------------------------

def test_rest_routes_never_answer_5xx(fuzz_server, livekit):
    # schemathesis' own pytest loader needs pytest internals that pytest 9 dropped: its strategies, under
    # hypothesis directly, against the running server
    schema = schemathesis.openapi.from_url(fuzz_server.url + "/openapi.json").exclude(path_regex="^/twirp/")
    headers = bearer(livekit, "fuzzer")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10, [op.label for op in operations]
    for operation in operations:

        @given(case=st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                              operation.as_strategy(GenerationMode.NEGATIVE)))
        @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)
        def no_5xx(case):
            response = case.call(headers=headers, timeout=30)
            assert response.status_code < 500, (f"{case.method} {case.formatted_path} {case.query} {case.body!r}: "
                                                f"{response.status_code} {response.text[:500]}")

        no_5xx()
    assert_every_error_was_checked(fuzz_server)


# ---- the Twirp fuzzer ---------------------------------------------------------------------------------------

def scalar(fd: FieldDescriptor, rng: random.Random):
    """A value for a scalar or enum field: often at an edge, sometimes unknown to the enum."""
    if fd.type == FieldDescriptor.TYPE_STRING:
        return rng.choice(STRINGS)
    if fd.type == FieldDescriptor.TYPE_BYTES:
        return rng.randbytes(rng.choice([0, 1, 16, 300]))
    if fd.type == FieldDescriptor.TYPE_BOOL:
        return rng.random() < 0.5
    if fd.type in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        return rng.choice([0.0, -1.0, 0.5, 1e300, math.inf, -math.inf, math.nan])
    if fd.type == FieldDescriptor.TYPE_ENUM:
        known = [v.number for v in fd.enum_type.values]
        return rng.choice(known + [99, 2**31 - 1, -1])
    lo, hi = _INT_RANGES[fd.type]
    return rng.choice([0, 1, lo, hi, max(lo, -1), rng.randint(lo, hi), 16, 1920, 48000])


def fill(msg: Message, rng: random.Random, depth: int) -> Message:
    """Set a random subset of ``msg``'s fields (nested messages down to ``depth``)."""
    for fd in msg.DESCRIPTOR.fields:
        if rng.random() > 0.45:
            continue
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            value_fd = fd.message_type.fields_by_name["value"]
            for _ in range(rng.randint(0, 2)):
                key = rng.choice(STRINGS[:12])
                if value_fd.message_type is not None:
                    fill(getattr(msg, fd.name)[key], rng, depth - 1)
                else:
                    getattr(msg, fd.name)[key] = scalar(value_fd, rng)
        elif fd.message_type is not None:
            if depth <= 0:
                continue
            if fd.is_repeated:
                for _ in range(rng.randint(0, 2)):
                    fill(getattr(msg, fd.name).add(), rng, depth - 1)
            else:
                getattr(msg, fd.name).SetInParent()
                fill(getattr(msg, fd.name), rng, depth - 1)
        elif fd.is_repeated:
            getattr(msg, fd.name).extend(scalar(fd, rng) for _ in range(rng.randint(0, 3)))
        else:
            setattr(msg, fd.name, scalar(fd, rng))
    return msg


def mutate_json(value, rng: random.Random):
    """``value`` (parsed JSON) with one random part replaced by junk, a key added, or nesting deepened."""
    if isinstance(value, dict) and value and rng.random() < 0.7:
        key = rng.choice(list(value))
        value[key] = mutate_json(value[key], rng)
        return value
    if isinstance(value, list) and value and rng.random() < 0.7:
        i = rng.randrange(len(value))
        value[i] = mutate_json(value[i], rng)
        return value
    choice = rng.random()
    if choice < 0.1 and isinstance(value, dict):
        value[rng.choice(["unknown_field", "room_name", "Room_Name", "file_outputs"])] = rng.choice(JUNK)
        return value
    return rng.choice(JUNK)


#: Valid requests that need no room (so they get past the room lookup to outputs and uploads): some cases
#: start from one and change a single field, to reach the checks behind the first ones.
SEEDS = {
    "StartWebEgress": eg.WebEgressRequest(url="http://127.0.0.1:1/page", file_outputs=[
        eg.EncodedFileOutput(filepath="fuzz/{time}.mp4")], segment_outputs=[eg.SegmentedFileOutput(
            filename_prefix="fuzz/seg", playlist_name="fuzz.m3u8")]),
    "StartEgress": eg.StartEgressRequest(web=eg.WebSource(url="http://127.0.0.1:1/page"), outputs=[
        eg.Output(file=eg.FileOutput(filepath="fuzz/{time}.mp4")),
        eg.Output(images=eg.ImageOutput(capture_interval=5, filename_prefix="fuzz/img"))]),
}


def one_field_changed(seed: Message, rng: random.Random) -> Message:
    """A copy of ``seed`` with one set field (at any depth) given a random value, or a new one filled."""
    msg = type(seed)()
    msg.CopyFrom(seed)
    node = msg
    while True:
        fields = node.ListFields()
        if not fields or rng.random() < 0.3:
            fill(node, rng, depth=2)
            return msg
        fd, value = rng.choice(fields)
        if fd.message_type is None or fd.message_type.GetOptions().map_entry:
            node.ClearField(fd.name)
            if fd.is_repeated:
                getattr(node, fd.name).extend(scalar(fd, rng) for _ in range(rng.randint(1, 2)))
            elif fd.message_type is None:
                setattr(node, fd.name, scalar(fd, rng))
            return msg
        node = value[rng.randrange(len(value))] if fd.is_repeated else value


def body_for(cls: type[Message], rng: random.Random, as_json: bool, seed: Message | None = None) -> bytes:
    """A request body: a random message (or ``seed`` with one field changed), mutated in one of three cases."""
    msg = one_field_changed(seed, rng) if seed is not None else fill(cls(), rng, depth=4)
    mutate = rng.random() < 0.35
    if as_json:
        data = json_format.MessageToDict(msg, preserving_proto_field_name=rng.random() < 0.7)
        if mutate and rng.random() < 0.1:  # nesting deeper than any parser's recursion
            return b'{"room_name": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
        if mutate:
            data = mutate_json(data, rng)
        return json.dumps(data, allow_nan=True).encode("utf-8", "surrogatepass")
    raw = bytearray(msg.SerializeToString())
    if mutate and raw:
        how = rng.random()
        if how < 0.4:
            for _ in range(rng.randint(1, 4)):
                raw[rng.randrange(len(raw))] = rng.randrange(256)
        elif how < 0.7:
            del raw[rng.randrange(len(raw)):]
        else:
            raw += rng.randbytes(rng.randint(1, 32))
    return bytes(raw)


def test_twirp_never_answers_5xx(fuzz_server, livekit):
    rng = random.Random(SEED)
    deadline = time.monotonic() + TIME_BUDGET_S
    sent = started = 0
    with httpx.Client(base_url=fuzz_server.url, headers=bearer(livekit, "fuzzer"), timeout=30) as http:
        for case in range(CASES):
            for name, cls in METHODS.items():
                for as_json in (True, False):
                    if time.monotonic() > deadline:
                        break
                    seeded = name in SEEDS and started < MAX_STARTS and rng.random() < 0.3
                    body = body_for(cls, rng, as_json, SEEDS[name] if seeded else None)
                    ctype = "application/json" if as_json else "application/protobuf"
                    resp = http.post(TWIRP + name, content=body, headers={"Content-Type": ctype})
                    sent += 1
                    where = f"seed {SEED} case {case} {name} {ctype} body {body[:300]!r}"
                    assert resp.status_code < 500, f"{where}: {resp.status_code} {resp.text[:500]}"
                    if resp.status_code != 200:
                        assert resp.headers["content-type"] == "application/json", where
                        assert {"code", "msg", "meta"} <= set(resp.json()), f"{where}: {resp.text[:300]}"
                    elif name.startswith("Start"):  # a web egress that got through: end it now
                        started += 1
                        info = eg.EgressInfo()
                        if as_json:
                            json_format.Parse(resp.content, info, ignore_unknown_fields=True)
                        else:
                            info.ParseFromString(resp.content)
                        http.post(TWIRP + "StopEgress", json={"egress_id": info.egress_id})
        assert http.post(TWIRP + "ListEgress", json={}).status_code == 200
    print(f"twirp fuzz: {sent} requests, {started} egresses started, seed {SEED}")
    assert_every_error_was_checked(fuzz_server)
    assert sent >= len(METHODS) * 2 * 5, f"only {sent} requests fitted in {TIME_BUDGET_S} s"
