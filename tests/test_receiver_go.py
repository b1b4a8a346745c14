"""The packet receiver's own Go tests (``receiver/*_test.go``: sequence numbers across wraparound,
duplicates, gaps; what a track writes around a loss; the timer slack), run with the toolchain and settings
that build it."""

from __future__ import annotations

import os
import subprocess

import pytest

from pyegress.media.source.packets import binary


def test_receiver_go_tests():
    try:
        go = binary.find_go()
    except binary.ReceiverUnavailable as e:
        pytest.skip(str(e))
    # as the receiver's build: the packages that build compiled are reused
    done = subprocess.run([go, "test", *binary.BUILD_FLAGS, "."], cwd=binary.MODULE_DIR,
                          env=os.environ | binary.BUILD_ENV, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
