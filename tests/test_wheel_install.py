"""pyegress as a package: the built wheel, installed into a fresh virtualenv outside the checkout, runs
``pyegress serve``/``worker``/``config check`` and the demo (a real recording) from an empty directory,
with the migrations, compiled protos and the receiver's Go sources inside the wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pyegress.devtools.probe import ffprobe

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The bin/ directory of a fresh virtualenv holding the wheel built from this checkout."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"), str(REPO)],
                   check=True, timeout=300)
    (wheel,) = (tmp / "dist").glob("pyegress-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("pyegress/database/migrations/env.py", "pyegress/psrpc/pb/rpc_egress_pb2.py",
                   "pyegress/media/source/packets/receiver/go.sum",
                   "pyegress/media/source/packets/receiver/main.go"):
        assert needed in names, needed
    subprocess.run([sys.executable, "-m", "venv", str(tmp / "venv")], check=True, timeout=120)
    bin_dir = tmp / "venv" / "bin"
    subprocess.run([str(bin_dir / "pip"), "install", "-q", str(wheel)], check=True, timeout=900)
    return bin_dir


def _env() -> dict[str, str]:
    """The environment without the checkout: no PYTHONPATH, no pyegress settings of the test run."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("PYEGRESS_", "PYTHON", "VIRTUAL_ENV")) and k not in ("EGRESS_CONFIG_FILE",
                                                                                      "EGRESS_CONFIG_BODY")}


def test_the_installed_package_is_the_wheels_not_the_checkouts(installed, tmp_path):
    where = subprocess.run([str(installed / "python"), "-c", "import pyegress; print(pyegress.__file__)"],
                           cwd=tmp_path, env=_env(), capture_output=True, text=True, check=True).stdout
    assert str(installed.parent) in where and str(REPO) not in where
    for command in (["serve", "--help"], ["worker", "--help"], ["config", "check", "--help"]):
        done = subprocess.run([str(installed / "pyegress"), *command], cwd=tmp_path, env=_env(),
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr


def test_the_installed_demo_records_a_real_room_from_an_empty_directory(installed, tmp_path):
    done = subprocess.run([str(installed / "pyegress"), "demo", "--seconds", "5", "--publishers", "2",
                           "--workdir", "out"], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (recording,) = [p for p in (tmp_path / "out").rglob("*.mp4")]
    probe = ffprobe(recording)
    assert probe.stream("video")["codec_name"] == "h264" and probe.stream("audio")["codec_name"] == "aac"
    assert 4.0 <= probe.duration <= 8.0
