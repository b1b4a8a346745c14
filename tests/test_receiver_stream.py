"""The receiver's frame stream as ``ReceiverProcess`` reads it (``media/source/packets/stream.py``), from a
stand-in receiver that writes given bytes: batches of frames, frames cut across writes, a corrupt header."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pytest

from pyegress.media.source.packets import stream
from pyegress.media.source.packets.stream import ReceiverProcess, Sample, StreamError

HEADER = struct.Struct("<BBHqI")


def sample(track: int, pts: int, data: bytes, flags: int = 0) -> bytes:
    return HEADER.pack(1, flags, track, pts, len(data)) + data


def event(**fields) -> bytes:
    payload = json.dumps(fields).encode()
    return HEADER.pack(2, 0, 0, 0, len(payload)) + payload


@pytest.fixture
def fake_receiver(tmp_path, monkeypatch):
    """Makes ReceiverProcess start a script that writes ``writes`` (bytes each, a pause between them) and
    then exits."""

    def use(writes: list[bytes]) -> None:
        script = tmp_path / "receiver"
        script.write_text(f"""#!{sys.executable}
import os, sys, time
sys.stdin.readline()
for chunk in {writes!r}:
    os.write(1, chunk)
    time.sleep(0.05)
""")
        script.chmod(0o755)
        monkeypatch.setattr(stream, "ensure_built", lambda: Path(script))

    return use


async def _read_all(receiver: ReceiverProcess) -> list[list]:
    batches = []
    while (frames := await receiver.read()) is not None:
        batches.append(frames)
    return batches


async def test_batches_and_frames_cut_across_writes(fake_receiver):
    big = bytes(range(256)) * 1000
    first = event(event="connected", room_name="r") + sample(1, 10, b"a", 1) + sample(1, 20, b"bb", 2)
    cut = sample(2, 30, big)
    fake_receiver([first, cut[:7], cut[7:5000], cut[5000:] + sample(1, 40, b"c")])
    receiver = ReceiverProcess("ws://x", "t", flush_ms=100)
    await receiver.start()
    batches = await _read_all(receiver)
    assert batches[0] == [{"event": "connected", "room_name": "r"}, Sample(1, 10, True, False, b"a"),
                          Sample(1, 20, False, True, b"bb")]
    assert [f for b in batches[1:] for f in b] == [Sample(2, 30, False, False, big), Sample(1, 40, False, False, b"c")]
    assert receiver.returncode == 0


async def test_a_corrupt_header_fails_after_the_frames_before_it(fake_receiver):
    fake_receiver([sample(1, 10, b"a") + HEADER.pack(9, 0, 0, 0, 1) + b"x"])
    receiver = ReceiverProcess("ws://x", "t")
    await receiver.start()
    assert await receiver.read() == [Sample(1, 10, False, False, b"a")]
    with pytest.raises(StreamError, match="bad frame header type=9"):
        await receiver.read()


async def test_a_stream_cut_inside_a_header_fails(fake_receiver):
    fake_receiver([sample(1, 10, b"a") + b"\x01\x00\x01"])
    receiver = ReceiverProcess("ws://x", "t")
    await receiver.start()
    assert await receiver.read() == [Sample(1, 10, False, False, b"a")]
    with pytest.raises(StreamError, match="inside a header"):
        await receiver.read()


@pytest.mark.parametrize("own, expected", [(None, "schedtrace=2000000000"),
                                           ("madvdontneed=1", "madvdontneed=1,schedtrace=2000000000"),
                                           ("schedtrace=1000", "schedtrace=1000")])
async def test_the_receiver_runs_with_sysmon_kept_from_parking(tmp_path, monkeypatch, own, expected):
    """GODEBUG reaches the started receiver (docs/receiver.md); one that sets schedtrace itself is left as is."""
    script = tmp_path / "receiver"
    script.write_text(f"""#!{sys.executable}
import json, os, struct, sys
sys.stdin.readline()
payload = json.dumps({{"event": "env", "godebug": os.environ.get("GODEBUG")}}).encode()
os.write(1, struct.pack("<BBHqI", 2, 0, 0, 0, len(payload)) + payload)
""")
    script.chmod(0o755)
    monkeypatch.setattr(stream, "ensure_built", lambda: Path(script))
    if own is None:
        monkeypatch.delenv("GODEBUG", raising=False)
    else:
        monkeypatch.setenv("GODEBUG", own)
    receiver = ReceiverProcess("ws://unused", "token")
    await receiver.start()
    (batch,) = await _read_all(receiver)
    assert batch == [{"event": "env", "godebug": expected}]
