"""Publish encoded media files into a LiveKit room unchanged: ``filepub`` (a Go program beside this
file, ``filepub/``), built on the server SDK's own file readers, so the bytes a track egress should
write are known exactly (``tests/test_passthrough_bitstream_e2e.py``).

The binary is built on first use with the machine's Go toolchain and cached under
``~/.cache/pyegress/filepub-<hash>/`` (``$PYEGRESS_CACHE``), the same scheme as the packet
receiver's (:mod:`pyegress.media.source.packets.binary`): the hash covers the module's ``go.mod``,
``go.sum`` and ``*.go``, so a changed program is rebuilt and an unchanged one never is. Its
dependencies are the receiver's, at the same versions, so a machine that built the receiver has
them all in its module cache.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pyegress.devtools.livekit_server import LiveKitServer
from pyegress.devtools.publisher import participant_token
from pyegress.media.source.packets.binary import _cache_root, find_go

MODULE_DIR = Path(__file__).with_name("filepub")


def source_hash() -> str:
    """First 12 hex digits of the SHA-256 over the module's ``go.mod``, ``go.sum`` and ``*.go`` files."""
    digest = hashlib.sha256()
    for path in sorted([*MODULE_DIR.glob("*.go"), MODULE_DIR / "go.mod", MODULE_DIR / "go.sum"]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def ensure_built() -> Path:
    """The ``filepub`` binary, built first if it is not cached.

    Raises:
        RuntimeError: the build failed (its output is in the message).
        pyegress.media.source.packets.binary.ReceiverUnavailable: Go is not installed.
    """
    binary = _cache_root() / f"filepub-{source_hash()}" / "filepub"
    if binary.exists():
        return binary
    go = find_go()
    binary.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=binary.parent) as tmp:
        built = Path(tmp) / "filepub"
        proc = subprocess.run([go, "build", "-trimpath", "-o", str(built), "."],
                              cwd=MODULE_DIR, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"building filepub failed:\n{proc.stderr[-4000:]}")
        os.replace(built, binary)  # atomic: a concurrent builder's result is as good as ours
    return binary


@dataclass
class FilePublisher:
    """A running ``filepub``: ``sids`` maps ``"video"``/``"audio"`` to the published tracks' SIDs, ``starts`` to the
    Unix time (ns) each began sending its file: content at ``t`` s into a file is sent at its start + ``t`` (so
    ``starts["audio"] - starts["video"]`` is the A/V offset the publisher itself sends)."""

    proc: subprocess.Popen
    sids: dict[str, str] = field(default_factory=dict)
    starts: dict[str, int] = field(default_factory=dict)


@contextmanager
def file_publisher(livekit: LiveKitServer, room: str, identity: str, *, video: Path | None = None,
                   audio: Path | None = None, fps: float = 30, loop: bool = True, width: int = 640,
                   height: int = 360, log: Path | None = None):
    """Join ``room`` as ``identity`` and publish ``video`` (``.ivf`` VP8/VP9, ``.h264`` Annex B) and/or
    ``audio`` (``.ogg`` Opus) as they are, looping them if ``loop``; yields a :class:`FilePublisher` once
    every track is published, and leaves the room at exit. ``fps`` paces IVF frames (the SDK sends
    H.264 at 33 ms per frame whatever it says). Its log goes to ``log`` (else discarded).

    Raises:
        RuntimeError: it exited before publishing (the message ends with its log), or did not
            publish within 30 s.
    """
    args = [str(ensure_built()), "-url", livekit.url, "-fps", str(fps), "-width", str(width),
            "-height", str(height)]
    if video is not None:
        args += ["-video", str(video)]
    if audio is not None:
        args += ["-audio", str(audio)]
    if loop:
        args.append("-loop")
    token = participant_token(livekit.api_key, livekit.api_secret, room, identity)
    with tempfile.TemporaryFile() if log is None else open(log, "w+b") as err:
        proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            proc.stdin.write(token + "\n")  # on stdin: argv is visible to every user of the machine
            proc.stdin.flush()
            publisher = FilePublisher(proc)
            timer = threading.Timer(30, proc.kill)  # a hung join must not hang the test
            timer.start()
            try:
                for line in proc.stdout:
                    words = line.split()
                    if words[:1] == ["track"] and len(words) == 3:
                        publisher.sids[words[1]] = words[2]
                    elif words[:1] == ["start"] and len(words) == 3:
                        publisher.starts[words[1]] = int(words[2])
                    elif words == ["ready"]:
                        break
                else:
                    err.flush()
                    err.seek(0)
                    raise RuntimeError(f"filepub exited ({proc.wait()}) before publishing:\n"
                                       f"{err.read()[-3000:].decode(errors='replace')}")
            finally:
                timer.cancel()
            yield publisher
        finally:
            try:
                proc.stdin.close()  # it leaves the room when stdin closes
            except OSError:  # it is gone already
                pass
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
