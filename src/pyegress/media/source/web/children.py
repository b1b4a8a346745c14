"""Child processes of a web egress (Chromium, PulseAudio, parec) and their private directory.

Children are started through :func:`~pyegress.media.source.children.orphan_proof`, so that a killed
handler does not leave a browser or a sound server behind; a handler killed with
SIGKILL leaves its directory, which the next web egress removes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import psutil

_DIR_PREFIX = "pyegress-web-"  # + handler PID: profile, sound server socket and logs of one web egress


def private_dir() -> Path:
    """A new temporary directory for one web egress, after removing those of handlers that died
    without cleaning up (SIGKILL)."""
    for path in Path(tempfile.gettempdir()).glob(f"{_DIR_PREFIX}*-*"):
        pid = path.name[len(_DIR_PREFIX):].split("-")[0]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{_DIR_PREFIX}{os.getpid()}-"))
