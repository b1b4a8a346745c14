"""The packet receiver's binary: built from its Go module (``receiver/`` beside this file) with the
machine's Go toolchain, and cached under ``~/.cache/pyegress/receiver-<hash>/`` (``$PYEGRESS_CACHE``),
where the hash covers the module's sources, so a changed receiver is rebuilt and an unchanged one
never is. ``scripts/setup`` builds it ahead; a worker that finds it missing builds it then.

``scripts/setup`` runs :func:`main` to build it and print its path.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

MODULE_DIR = Path(__file__).with_name("receiver")
#: The Go release the module's go.mod asks for (go.mod ``go`` line); older toolchains refuse it.
GO_VERSION = "1.26"
#: The build's environment on top of ours: no cgo, so that the receiver can set its timer slack on every
#: thread (``setTimerSlack`` in main.go; Go refuses a system call on all threads of a cgo program).
BUILD_ENV = {"CGO_ENABLED": "0"}
#: ``go build`` arguments before ``-o``.
BUILD_FLAGS = ("-trimpath", "-ldflags=-s -w")


class ReceiverUnavailable(RuntimeError):
    """The receiver is not built and cannot be: ``str(error)`` says what to install."""


def _cache_root() -> Path:
    return Path(os.environ.get("PYEGRESS_CACHE", Path.home() / ".cache" / "pyegress"))


def source_hash() -> str:
    """First 12 hex digits of the SHA-256 over the module's ``go.mod``, ``go.sum`` and ``*.go`` files and
    the build's settings (:data:`BUILD_ENV`, :data:`BUILD_FLAGS`)."""
    digest = hashlib.sha256(repr((sorted(BUILD_ENV.items()), BUILD_FLAGS)).encode())
    for path in sorted([*MODULE_DIR.glob("*.go"), MODULE_DIR / "go.mod", MODULE_DIR / "go.sum"]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def binary_path() -> Path:
    return _cache_root() / f"receiver-{source_hash()}" / "receiver"


def find_go() -> str:
    """The ``go`` command.

    Raises:
        ReceiverUnavailable: no Go toolchain on PATH or in /usr/local/go.
    """
    go = shutil.which("go") or "/usr/local/go/bin/go"
    if not Path(go).exists():
        raise ReceiverUnavailable(
            f"the packet receiver is not built and Go is not installed: install Go >= {GO_VERSION} "
            "(https://go.dev/dl/, or Debian's golang package if new enough) and run scripts/setup")
    return go


def ensure_built() -> Path:
    """The receiver binary, built first if it is not cached.

    Raises:
        ReceiverUnavailable: Go is missing, or the build failed (its output is in the message).
    """
    binary = binary_path()
    if binary.exists():
        return binary
    go = find_go()
    binary.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=binary.parent) as tmp:
        built = Path(tmp) / "receiver"
        proc = subprocess.run([go, "build", *BUILD_FLAGS, "-o", str(built), "."], cwd=MODULE_DIR,
                              env=os.environ | BUILD_ENV, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ReceiverUnavailable(f"building the packet receiver failed:\n{proc.stderr[-4000:]}")
        os.replace(built, binary)  # atomic: a concurrent builder's result is as good as ours
    return binary


def main() -> None:
    """Build the receiver if needed and print its path; exit 1 with the reason if it cannot be built."""
    try:
        print(ensure_built())
    except ReceiverUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
