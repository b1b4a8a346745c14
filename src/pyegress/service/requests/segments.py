"""Segment outputs (``segment_outputs`` / legacy ``segments``): HLS, ``media/outputs/segments.py``."""

from __future__ import annotations

from livekit.protocol import egress as eg

from ...contract.encoding import EncodingSettings
from ...contract.job import SegmentsTarget
from ...errors import invalid
from ...storage import AnyStorage
from .paths import DEFAULT_NAME, Resolver
from .storage import upload_target


def resolve_segments(out, f: str, r: Resolver, *, storage: AnyStorage | None, video: bool,
                     encoding: EncodingSettings) -> SegmentsTarget:
    """The target of the segments output ``out`` (field ``f``): its directory, prefix and playlists.

    Raises:
        EgressError: ``invalid_argument`` naming the field.
    """
    upload = upload_target(out, f, storage)
    if video and encoding.video_codec == "vp8":
        raise invalid("advanced.video_codec", "HLS segments need H.264 video")
    if out.protocol not in eg.SegmentedFileProtocol.values():
        raise invalid(f"{f}.protocol", f"unknown SegmentedFileProtocol {out.protocol}")
    duration = out.segment_duration or 4
    if duration > 60:
        raise invalid(f"{f}.segment_duration", f"must be 1 to 60 s, got {duration}")
    prefix_path = r.prefix((out.filename_prefix or DEFAULT_NAME).removesuffix(".m3u8"), f"{f}.filename_prefix")
    directory = prefix_path.parent
    # a playlist named with the segments' own directory ("dir/index.m3u8", as autoegress examples do)
    # is that name inside it
    playlist = r.playlist(out.playlist_name or prefix_path.name, directory, f"{f}.playlist_name")
    live = out.live_playlist_name and r.playlist(out.live_playlist_name, directory, f"{f}.live_playlist_name")
    return SegmentsTarget(
        directory=str(directory), prefix=prefix_path.name, playlist=playlist, live_playlist=live,
        segment_duration=float(duration),
        container="fmp4" if out.protocol == eg.SegmentedFileProtocol.HLS_FMP4_PROTOCOL else "ts",
        suffix="timestamp" if out.filename_suffix == eg.SegmentedFileSuffix.TIMESTAMP else "index",
        reported_prefix=f"{r.relative(directory)}/".removeprefix("./"), upload=upload)
