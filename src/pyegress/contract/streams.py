"""Stream outputs as both sides see them: URLs redacted for results and logs, and whether SRT can be
sent here (the service refuses SRT URLs otherwise, the handler sends them)."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from urllib.parse import urlsplit, urlunsplit


def redact_url(url: str) -> str:
    """``url`` with its stream key (last path segment) and any password masked, for results and logs."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "****@" + netloc.split("@", 1)[1]
    head, _, key = parts.path.rpartition("/")
    path = f"{head}/{'*' * 4}" if key else parts.path
    return urlunsplit((parts.scheme, netloc, path, "", ""))


_SRT_SECRETS = re.compile(r"(passphrase|streamid|pbkeylen)=[^&\s]*")


def redact_error(error: str, url: str) -> str:
    """``error`` (FFmpeg's words, which quote the URL with its stream key, SRT passphrase and all) with
    ``url`` redacted and any SRT secret masked, for results and logs."""
    return _SRT_SECRETS.sub(r"\1=****", error.replace(url, redact_url(url)))


@functools.cache
def srt_available() -> bool:
    """Whether an ``ffmpeg`` on PATH can send SRT (Debian's is built with libsrt)."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        return False
    try:
        out = subprocess.run([ffmpeg, "-hide_banner", "-protocols"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "srt" in out.partition("Output:")[2].split()
