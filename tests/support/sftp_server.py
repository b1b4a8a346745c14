"""A real SFTP server for tests: asyncssh's SFTP server on loopback, rooted (chroot-like) at a directory,
run as ``python tests/support/sftp_server.py``."""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from pathlib import Path

from pyegress.devtools.process import ServerProcess, free_port, tcp_open


class SFTPServer(ServerProcess):
    """SFTP on 127.0.0.1:``port`` for ``username`` with ``password`` or the private key in
    :attr:`client_key` (OpenSSH text); files land under ``workdir/root`` (paths are relative to it, ``/``
    is its top). The host key is made once, so :attr:`host_key` stays valid across stop/start."""

    name = "sftp"

    def __init__(self, workdir: Path, username: str = "egress", password: str = "sftp-pass") -> None:
        import asyncssh

        self.workdir = Path(workdir)
        self.username, self.password = username, password
        self.port = free_port()
        self.workdir.mkdir(parents=True, exist_ok=True)
        host = asyncssh.generate_private_key("ssh-ed25519")
        host.write_private_key(str(self.workdir / "host_key"))
        self.host_key = host.export_public_key().decode().strip()
        client = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key = client.export_private_key().decode()
        (self.workdir / "authorized_keys").write_bytes(client.export_public_key())

    @property
    def root(self) -> Path:
        return self.workdir / "root"

    def start(self, timeout_s: float = 30.0) -> "SFTPServer":
        self.root.mkdir(parents=True, exist_ok=True)
        self._spawn([sys.executable, __file__, "--port", str(self.port),
                     "--workdir", str(self.workdir), "--username", self.username, "--password", self.password],
                    lambda: tcp_open("127.0.0.1", self.port), timeout_s,
                    stdout=open(self.workdir / "sftp.log", "ab"), stderr=subprocess.STDOUT)
        return self


async def _serve(port: int, workdir: Path, username: str, password: str) -> None:
    import asyncssh

    class Server(asyncssh.SSHServer):
        def begin_auth(self, user: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, user: str, pw: str) -> bool:
            return user == username and pw == password

    root = str(workdir / "root")
    await asyncssh.listen("127.0.0.1", port, server_host_keys=[str(workdir / "host_key")],
                          authorized_client_keys=str(workdir / "authorized_keys"), server_factory=Server,
                          sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=root), allow_scp=False)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--username", required=True)
    parser.add_argument("--password", required=True)
    args = parser.parse_args()
    asyncio.run(_serve(args.port, args.workdir, args.username, args.password))
