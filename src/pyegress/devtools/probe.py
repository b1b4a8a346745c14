"""ffprobe as a function: what a user would check about a recording."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path


@dataclass
class ProbeResult:
    """Streams and format of a media file as ffprobe reports them (durations in s, rates in fps/Hz)."""

    raw: dict

    def stream(self, kind: str) -> dict | None:
        return next((s for s in self.raw.get("streams", []) if s.get("codec_type") == kind), None)

    @property
    def duration(self) -> float:
        return float(self.raw["format"]["duration"])

    @property
    def video_fps(self) -> float:
        v = self.stream("video")
        return float(Fraction(v["avg_frame_rate"])) if v else 0.0

    def summary(self) -> str:
        parts = [f"duration {self.duration:.2f} s"]
        if v := self.stream("video"):
            parts.append(f"video {v['codec_name']} {v.get('profile', '')} {v['width']}x{v['height']} "
                         f"{self.video_fps:.2f} fps")
        if a := self.stream("audio"):
            parts.append(f"audio {a['codec_name']} {a['sample_rate']} Hz {a.get('channels')} ch")
        return ", ".join(parts)


def ffprobe(path: str | Path) -> ProbeResult:
    """Run ``ffprobe`` on ``path``.

    Raises:
        subprocess.CalledProcessError: ffprobe could not read the file.
    """
    out = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
                          str(path)], check=True, capture_output=True, text=True).stdout
    return ProbeResult(json.loads(out))
