"""Local disk as a storage destination: output files created and rewritten without following a symlink.

The service confines every output path to the recordings directory and hands the worker absolute,
symlink-free paths (their directories resolved with ``realpath``). Whatever is planted in the
recordings directory afterwards must not lead a write elsewhere, so every write goes through here:

- a directory is reached by walking its absolute path from ``/`` one component at a time with
  ``O_DIRECTORY|O_NOFOLLOW`` (creating missing components relative to their parent's descriptor), so
  its real path is exactly the path given, the one the service confined;
- files are created relative to that directory's descriptor with ``O_NOFOLLOW`` and ``O_EXCL``;
- rewritten files (playlists, thumbnails, manifests) and HLS segments are written to a fresh temp
  file and renamed into place, which replaces a link there instead of writing through it;
- each file name is re-checked to be one path component the OS accepts (:func:`check_name`).
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path
from typing import BinaryIO

#: Longest file name (bytes, UTF-8) Linux file systems accept (``NAME_MAX``).
NAME_MAX = 255
#: Longest path (bytes, with its terminating NUL) a path-based system call accepts (``PATH_MAX``).
PATH_MAX = 4096

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class InvalidPath(OSError, ValueError):
    """A path or file name that is not written to: not absolute and normalised, or not a valid single name.
    An OSError, so a writer's callers handle it as any other failed write."""


def check_name(name: str, reserve: int = 0) -> None:
    """Check that ``name`` is a single path component that a file can be created with, with room for
    ``reserve`` more bytes (what a writer appends to it, such as a manifest's ``.json``).

    Raises:
        InvalidPath: ``name`` is empty, ``.`` or ``..``, holds ``/`` or NUL, cannot be encoded as
            UTF-8 (lone surrogates), or is too long for :data:`NAME_MAX`; the message says which.
    """
    if name in ("", ".", ".."):
        raise InvalidPath(f"{name!r} is not a file name")
    if "/" in name or "\x00" in name:
        raise InvalidPath(f"{name!r} holds '/' or NUL: not a single file name")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidPath("is not valid Unicode (lone surrogate)") from None
    if size + reserve > NAME_MAX:
        raise InvalidPath(f"has a file name of {size} bytes; at most {NAME_MAX - reserve} fit here "
                         f"(NAME_MAX {NAME_MAX})")


class LocalDir:
    """A directory of the recordings tree, held open by descriptor; files are created in it by name.

    Raises:
        InvalidPath: ``path`` is not absolute and normalised, or a component is not a valid name.
        OSError: a component is a symlink or not a directory (``ELOOP``/``ENOTDIR``), or it cannot
            be created.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        text = str(self.path)
        if not self.path.is_absolute() or os.path.normpath(text) != text or text.startswith("//"):
            raise InvalidPath(f"{text!r} is not an absolute, normalised directory path")
        self.fd = os.open("/", _DIR_FLAGS)
        try:
            for depth, part in enumerate(self.path.parts[1:], 2):
                check_name(part)
                self._enter(part, Path(*self.path.parts[:depth]))
        except BaseException:
            os.close(self.fd)
            raise

    def _enter(self, part: str, path: Path) -> None:
        """Move to subdirectory ``part`` (at ``path``) of the current one, creating it if missing."""
        try:
            try:
                fd = os.open(part, _DIR_FLAGS, dir_fd=self.fd)
            except FileNotFoundError:
                try:
                    os.mkdir(part, 0o777, dir_fd=self.fd)
                except FileExistsError:  # created meanwhile (by another output): opened below all the same
                    pass
                fd = os.open(part, _DIR_FLAGS, dir_fd=self.fd)
        except OSError as e:
            if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            # a symlink (planted) or a file where a directory is meant
            raise OSError(e.errno, f"{e.strerror}: a symlink or a file, not written through", str(path)) from None
        os.close(self.fd)
        self.fd = fd

    def create(self, name: str) -> BinaryIO:
        """A new, empty file ``name`` here, open for writing unbuffered (each write reaches the file).

        Raises:
            InvalidPath: ``name`` is not a single valid file name.
            FileExistsError: ``name`` exists, as a file or as a symlink (which is never followed).
        """
        check_name(name)
        try:
            fd = os.open(name, _NEW_FILE_FLAGS, 0o666, dir_fd=self.fd)
        except FileExistsError:
            raise FileExistsError(errno.EEXIST, "exists already; not overwritten", str(self.path / name)) from None
        return os.fdopen(fd, "wb", buffering=0)

    def create_temp(self) -> tuple[str, BinaryIO]:
        """A new temp file here (a random hidden name) and its name, for :meth:`commit` or :meth:`discard`."""
        while True:
            name = f".pyegress-{secrets.token_hex(8)}.tmp"
            try:
                return name, self.create(name)
            except FileExistsError:  # planted or a leftover: never reused
                continue

    def commit(self, temp: str, name: str) -> None:
        """Rename temp file ``temp`` to ``name``, replacing what was there (a symlink too, not its target).

        Raises:
            InvalidPath: ``name`` is not a single valid file name.
            OSError: the rename failed (e.g. ``name`` is a directory).
        """
        check_name(name)
        os.replace(temp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def discard(self, temp: str) -> None:
        """Remove temp file ``temp`` (an output that failed)."""
        try:
            os.unlink(temp, dir_fd=self.fd)
        except FileNotFoundError:
            pass

    def replace(self, name: str, data: bytes) -> None:
        """Write ``data`` as file ``name`` atomically: a reader sees the old content or the new, whole.

        Raises:
            InvalidPath: ``name`` is not a single valid file name.
            OSError: writing failed (no space, ...); no temp file is left behind.
        """
        check_name(name)
        temp, f = self.create_temp()
        try:
            with f:
                f.write(data)
            self.commit(temp, name)
        except BaseException:
            self.discard(temp)
            raise

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "LocalDir":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_new(path: str | os.PathLike) -> BinaryIO:
    """Create the new file at absolute ``path`` (and its missing directories) for writing, unbuffered.

    Raises:
        InvalidPath: ``path`` is not absolute and normalised, or a name in it is invalid.
        FileExistsError: the file exists (as a file or a symlink: nothing is overwritten or followed).
        OSError: a directory on the way is a symlink or cannot be created.
    """
    path = Path(path)
    with LocalDir(path.parent) as directory:
        return directory.create(path.name)


def open_existing(path: str | os.PathLike) -> BinaryIO:
    """Open the existing file at absolute ``path`` for reading (buffered), never through a symlink: what
    an upload reads is the file the recording wrote, even if a link was put in its place since.

    Raises:
        InvalidPath: ``path`` is not absolute and normalised, or a name in it is invalid.
        OSError: the file is missing, or it or a directory on the way is a symlink (``ELOOP``).
    """
    path = Path(path)
    with LocalDir(path.parent) as directory:
        check_name(path.name)
        fd = os.open(path.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=directory.fd)
    return os.fdopen(fd, "rb")


def replace_atomically(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` as the file at absolute ``path`` through a temp file and a rename, so a symlink
    planted at ``path`` is replaced rather than followed and a reader never sees half a file.

    Raises:
        InvalidPath: ``path`` is not absolute and normalised, or a name in it is invalid.
        OSError: a directory on the way is a symlink or cannot be created, or the write failed.
    """
    path = Path(path)
    with LocalDir(path.parent) as directory:
        directory.replace(path.name, data)
