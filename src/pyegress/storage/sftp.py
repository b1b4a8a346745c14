"""SFTP destinations through asyncssh (Cloudflare RealtimeKit's ``STORAGE_CONFIG`` type ``sftp``)."""

from __future__ import annotations

import asyncio
import posixpath
import warnings
from pathlib import Path
from typing import Literal

from cryptography.utils import CryptographyDeprecationWarning
from pydantic import Field

with warnings.catch_warnings():
    # asyncssh names DSA types at import, which cryptography deprecates: a warning on every command
    warnings.simplefilter("ignore", CryptographyDeprecationWarning)
    import asyncssh

from .base import Storage
from .local import open_existing

_CHUNK = 256 * 1024  # bytes per SFTP write


class SFTPStorage(Storage):
    """A directory ``base_path`` on an SFTP server, reached as ``username`` with ``password`` or
    ``private_key`` (OpenSSH/PEM text, with ``passphrase`` if encrypted). ``host_key``: the server's
    public key (``ssh-ed25519 AAAA...``); empty accepts any key, as the services that take bare
    host/user/password configurations do. ``base_path`` relative names start at the login directory."""

    kind: Literal["sftp"] = "sftp"
    host: str
    port: int = 22
    username: str
    password: str = Field("", repr=False)  # a secret: kept out of logs
    private_key: str = Field("", repr=False)  # a secret: kept out of logs
    passphrase: str = Field("", repr=False)  # a secret: kept out of logs
    host_key: str = ""
    base_path: str = ""
    connect_timeout_s: float = 10.0

    def describe(self) -> str:
        return f"sftp://{self.username}@{self.host}:{self.port}/{self.base_path.strip('/')}"

    def _remote(self, key: str) -> str:
        return posixpath.join(self.base_path, key) if self.base_path else key

    def _object_location(self, key: str) -> str:
        path = self._remote(key)
        return f"sftp://{self.username}@{self.host}:{self.port}{'' if path.startswith('/') else '/'}{path}"

    def _connect(self):
        keys = [asyncssh.import_private_key(self.private_key, self.passphrase or None)] if self.private_key else None
        known = None
        if self.host_key:
            known = ([asyncssh.import_public_key(self.host_key)], [], [])
        return asyncssh.connect(self.host, self.port, username=self.username, password=self.password or None,
                                client_keys=keys, known_hosts=known, connect_timeout=self.connect_timeout_s,
                                agent_path=None, preferred_auth="publickey,password" if keys else "password")

    async def _aput(self, path: Path, key: str) -> None:
        remote = self._remote(key)
        partial = remote + ".part"  # renamed once complete: a reader never sees half an object
        async with self._connect() as conn, conn.start_sftp_client() as sftp:
            if posixpath.dirname(remote):
                await sftp.makedirs(posixpath.dirname(remote), exist_ok=True)
            with open_existing(path) as local:  # the recording's file, never a link put in its place
                async with sftp.open(partial, "wb") as remote_file:
                    while chunk := local.read(_CHUNK):
                        await remote_file.write(chunk)
            try:
                await sftp.posix_rename(partial, remote)  # atomic replace (OpenSSH extension)
            except asyncssh.SFTPOpUnsupported:
                if await sftp.exists(remote):
                    await sftp.remove(remote)
                await sftp.rename(partial, remote)

    def _put(self, path: Path, key: str) -> None:
        asyncio.run(self._aput(path, key))

    async def _adelete(self, key: str) -> None:
        async with self._connect() as conn, conn.start_sftp_client() as sftp:
            try:
                await sftp.remove(self._remote(key))
            except asyncssh.SFTPNoSuchFile:
                pass

    def delete(self, key: str) -> None:
        """Remove the file ``key``; a missing file is not an error. Blocks (runs its own event loop)."""
        asyncio.run(self._adelete(self.key(key)))
