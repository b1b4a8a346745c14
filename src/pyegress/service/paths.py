"""Output paths: LiveKit's filename placeholders, and confinement to the recordings directory."""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from pathlib import Path

from ..errors import invalid

_PLACEHOLDER = re.compile(r"\{(room_name|room_id|time|utc|publisher_identity|track_id|track_type|track_source)\}")


def expand_placeholders(template: str, values: dict[str, str], now: datetime | None = None) -> str:
    """Replace LiveKit filename placeholders in ``template``.

    ``{time}`` is local time as ``2006-01-02T150405``, ``{utc}`` UTC as
    ``20060102150405`` (LiveKit egress's formats); the other names come from
    ``values`` (an unknown value becomes an empty string).
    """
    now = now or datetime.now().astimezone()
    builtins = {"time": now.strftime("%Y-%m-%dT%H%M%S"),
                "utc": now.astimezone(timezone.utc).strftime("%Y%m%d%H%M%S")}
    return _PLACEHOLDER.sub(lambda m: builtins.get(m.group(1)) or values.get(m.group(1), ""), template)


def confine(root: Path, relative: str, field: str) -> Path:
    """The absolute path of ``relative`` inside ``root``.

    A leading ``/`` is taken as the root of the recordings directory, as a
    LiveKit egress container's ``/out/...`` would be.

    Raises:
        EgressError: ``invalid_argument`` naming ``field`` if the path escapes
            ``root`` (``..``, symlinks) or is empty.
    """
    rel = relative.lstrip("/")
    if not rel or rel.endswith("/"):
        raise invalid(field, "must name a file")
    if "\x00" in rel:
        raise invalid(field, "contains a NUL character")
    root_real = Path(os.path.realpath(root))
    candidate = Path(os.path.realpath(root_real / rel))
    if candidate != root_real and root_real not in candidate.parents:
        raise invalid(field, f"path {relative!r} escapes the recordings directory")
    return candidate


def unique_path(path: Path) -> Path:
    """``path``, or ``name-1.ext``, ``name-2.ext``... so an existing file is never overwritten."""
    n, candidate = 0, path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate
