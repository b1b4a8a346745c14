"""Child processes of a source (Chromium, PulseAudio, the packet receiver): started so that they
die with the handler, and stopped politely first.

They are started through util-linux ``setpriv --pdeathsig``: the kernel signals the child when the
handler dies, even by SIGKILL, so no browser, sound server or receiver outlives its egress.
"""

from __future__ import annotations

import asyncio
import shutil


def orphan_proof(argv: list[str]) -> list[str]:
    """``argv`` run so that it gets SIGTERM when this process dies (util-linux ``setpriv``)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "SIGTERM", "--", *argv] if setpriv else argv


async def terminate(proc: asyncio.subprocess.Process | None, grace_s: float = 3.0) -> None:
    """SIGTERM ``proc`` and wait for it; SIGKILL after ``grace_s``."""
    if proc is None or proc.returncode is not None:
        return
    proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), grace_s)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
