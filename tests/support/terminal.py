"""A command run in a pseudo-terminal, as a person runs it: what it draws is read as it comes, Ctrl-C is SIGINT."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time

_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[()][0-9A-B]")


class Terminal:
    """``args`` in a ``columns`` × 50 pseudo-terminal (stdin, stdout and stderr); ``text`` is everything it has
    written so far without terminal escapes."""

    def __init__(self, args: list[str], env: dict[str, str], columns: int = 200) -> None:
        master, child = pty.openpty()
        fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
        self.proc = subprocess.Popen(args, stdin=child, stdout=child, stderr=child, close_fds=True,
                                     env=dict(env, TERM="xterm-256color", COLUMNS=str(columns)))
        os.close(child)
        self._master = master
        self._raw = b""

    @property
    def text(self) -> str:
        return _ESCAPES.sub("", self._raw.decode(errors="replace"))

    def _read(self, timeout_s: float) -> bool:
        """Read what is there within ``timeout_s``; False at the end of output (the command exited)."""
        ready, _, _ = select.select([self._master], [], [], timeout_s)
        if not ready:
            return True
        try:
            chunk = os.read(self._master, 65536)
        except OSError:  # EIO: every writer closed its side
            return False
        self._raw += chunk
        return bool(chunk)

    def read_until(self, done, timeout_s: float) -> str:
        """Read until ``done(text)``; returns the text.

        Raises:
            AssertionError: not done within ``timeout_s`` or the command ended first (its output in the message).
        """
        deadline = time.monotonic() + timeout_s
        while not done(self.text):
            if time.monotonic() > deadline or not self._read(min(0.5, max(0.0, deadline - time.monotonic()))):
                raise AssertionError(f"terminal never showed what was expected; it shows:\n{self.text[-3000:]}")
        return self.text

    def interrupt(self) -> None:
        """Ctrl-C: SIGINT to the command."""
        self.proc.send_signal(signal.SIGINT)

    def wait(self, timeout_s: float) -> int:
        """Read to the end of the output and return the exit status.

        Raises:
            AssertionError: the command is still running after ``timeout_s`` (it is killed).
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self._read(0.5):
            pass
        try:
            return self.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.close()
            raise AssertionError(f"command did not exit in {timeout_s} s; it shows:\n{self.text[-3000:]}") from None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self._master)
        self._master = -1

    def __enter__(self) -> "Terminal":
        return self

    def __exit__(self, *exc) -> None:
        if self._master >= 0:
            self.close()
