"""Output paths: LiveKit's filename placeholders, and confinement to the recordings directory."""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from pathlib import Path

from ..errors import invalid
from ..storage.local import PATH_MAX, InvalidPath, check_name

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
    """The absolute path of ``relative`` inside ``root``, with every symlink in it resolved.

    A leading ``/`` (or ``//``...) is taken as the root of the recordings directory, as a LiveKit
    egress container's ``/out/...`` would be. The result is the one path to use from then on: it
    has no symlink, ``.`` or ``..`` left, so what was checked is what gets opened.

    Raises:
        EgressError: ``invalid_argument`` naming ``field`` if the path is empty or names a
            directory, a component is not a valid file name (NUL, lone surrogates, longer than
            NAME_MAX bytes), or the path escapes ``root`` (``..``, symlinks).
    """
    rel = relative.lstrip("/")
    if not rel or rel.rsplit("/", 1)[-1] in ("", ".", ".."):
        raise invalid(field, "must name a file")
    for part in rel.split("/"):
        if part not in ("", ".", ".."):
            _check_name(part, field)
    root_real = Path(os.path.realpath(root))
    candidate = Path(os.path.realpath(root_real / rel))
    if root_real not in candidate.parents:
        raise invalid(field, f"path {relative!r} escapes the recordings directory")
    check_fits(candidate, field)
    return candidate


def _check_name(name: str, field: str, reserve: int = 0) -> None:
    try:
        check_name(name, reserve)
    except InvalidPath as e:
        raise invalid(field, str(e)) from None


def check_fits(path: Path, field: str, reserve: int = 0) -> None:
    """Check that ``path``'s file name, with ``reserve`` more bytes appended (a worker's ``.json`` of a
    manifest, ``_00000.ts`` of a segment), is a valid file name and the whole path fits PATH_MAX: a name
    the OS refuses is a bad request, not an error while recording.

    Raises:
        EgressError: ``invalid_argument`` naming ``field``.
    """
    _check_name(path.name, field, reserve)
    if len(os.fsencode(path)) + reserve >= PATH_MAX:
        raise invalid(field, f"makes a path longer than {PATH_MAX - 1} bytes")


def unique_path(path: Path) -> Path:
    """``path``, or ``name-1.ext``, ``name-2.ext``... so nothing existing (a file, a symlink, even a
    dangling one) is ever overwritten."""
    n, candidate = 0, path
    while os.path.lexists(candidate):
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate
