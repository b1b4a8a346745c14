"""Output paths: LiveKit's filename placeholders, confinement to the recordings directory, and the
:class:`Resolver` every output kind turns its path templates with."""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from pathlib import Path

from ...errors import invalid
from ...storage.local import PATH_MAX, InvalidPath, check_name

DEFAULT_NAME = "{room_name}-{time}"  # an output path given as a directory (or not at all) names this
MANIFEST_EXT = ".json"  # the manifest beside a file or playlist
PREFIX_ROOM = len("_20060102150405000.jpeg")  # the longest a handler appends to a segment or image prefix
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
    """Check that ``path``'s file name, with ``reserve`` more bytes appended (a handler's ``.json`` of a
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


class Resolver:
    """Turns the request's path templates into confined, symlink-free absolute paths; a handler gets only
    these (a directory and single-component names in it), so nothing it writes can leave ``root``."""

    def __init__(self, root: Path, values: dict[str, str]) -> None:
        self.root = Path(root).resolve()
        self.values = values

    def path(self, template: str, field_name: str) -> Path:
        if template.endswith("/"):
            template += DEFAULT_NAME
        return confine(self.root, expand_placeholders(template, self.values), field_name)

    def file(self, template: str, ext: str, field_name: str) -> Path:
        """A new file: ``template`` confined, ``ext`` added if it has no extension, numbered if taken."""
        path = self.path(template, field_name)
        if not path.suffix:
            path = path.with_name(path.name + ext)
        path = unique_path(path)
        check_fits(path, field_name, reserve=len(MANIFEST_EXT))
        return path

    def prefix(self, template: str, field_name: str) -> Path:
        """The directory and name prefix (one path) of the files a segments or images output numbers."""
        path = self.path(template, field_name)
        check_fits(path, field_name, reserve=PREFIX_ROOM)
        return path

    def playlist(self, template: str, directory: Path, field_name: str) -> str:
        """The file name of a playlist beside the segments in ``directory``: a bare name is in it; a path
        (from the recordings root, as every path) must lead into it.

        Raises:
            EgressError: ``invalid_argument`` naming ``field_name``.
        """
        name = expand_placeholders(template, self.values)
        name = name if name.endswith(".m3u8") else name + ".m3u8"
        path = confine(self.root if "/" in name else directory, name, field_name)
        if path.parent != directory:
            raise invalid(field_name, f"{template!r} is not in the directory of filename_prefix "
                                      f"({self.relative(directory)!r}): playlists sit beside their segments")
        check_fits(path, field_name, reserve=len(MANIFEST_EXT))
        return path.name

    def relative(self, path: Path) -> str:
        return str(path.relative_to(self.root))
