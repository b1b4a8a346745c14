"""No request-supplied name leads a write outside the recordings directory, none follows a symlink planted
inside it, and a name the OS would refuse is a bad request (issue 12, items 1, 2 and the ENAMETOOLONG 500)."""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path

import av
import numpy as np
import pytest
from livekit import api

from pyegress.devtools.probe import ffprobe
from pyegress.errors import EgressError
from pyegress.media.encode.encoder import MediaEncoder
from pyegress.contract.encoding import EncodingSettings
from pyegress.media.outputs.file import FileOutput
from pyegress.media.outputs.images import ImagesOutput
from pyegress.media.outputs.segments import SegmentsOutput
from pyegress.service.requests.paths import confine, unique_path
from pyegress.service.requests import resolve_outputs, resolve_track_egress, unified_to_composite
from pyegress.storage.local import InvalidPath, LocalDir, open_existing, open_new, replace_atomically
from pyegress.contract.job import FileTarget, ImagesTarget, SegmentsTarget

from conftest import wait_status

S = api.EgressStatus
ENDED = (S.EGRESS_COMPLETE, S.EGRESS_FAILED, S.EGRESS_ABORTED, S.EGRESS_LIMIT_REACHED)
UNTOUCHED = b"untouched"


@pytest.fixture
def dirs(tmp_path):
    """``(root, outside)``: a recordings directory and a sibling directory a write must never reach."""
    root, outside = tmp_path / "recordings", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    return root.resolve(), outside.resolve()


def plant(link: Path, target: Path, content: bytes | None = UNTOUCHED) -> Path:
    """A symlink ``link`` → ``target``; a live one (``target`` written with ``content``) or, with
    ``content=None``, a dangling one."""
    link.parent.mkdir(parents=True, exist_ok=True)
    if content is not None:
        target.write_bytes(content)
    link.symlink_to(target)
    return target


def assert_untouched(outside: Path, live: list[Path]) -> None:
    """Every live link's target still holds its content, and nothing else appeared outside."""
    for target in live:
        assert target.read_bytes() == UNTOUCHED, target
    assert sorted(outside.iterdir()) == sorted(live)


def _composite(**kw) -> api.RoomCompositeEgressRequest:
    return api.RoomCompositeEgressRequest(room_name="r", **kw)


def _resolve(req, root: Path):
    enc = EncodingSettings()
    return resolve_outputs(req, root=root, values={"room_name": req.room_name}, audio=True, video=True,
                           encoding=enc)


def _invalid(field: str):
    return pytest.raises(EgressError, match=f"^{re.escape(field)}: ")


# ---- the service: names resolved and confined once ---------------------------------------------------


def test_confine_keeps_absolute_and_double_slash_names_inside(dirs):
    root, outside = dirs
    assert confine(root, f"/{outside}/x.mp4", "f") == root / str(outside).lstrip("/") / "x.mp4"
    assert confine(root, "//tmp/x.mp4", "f") == root / "tmp/x.mp4"
    for bad in ("..", "a/..", "../x.mp4", "a/../../x.mp4", "/", "//", ".", "a/."):
        with _invalid("f"):
            confine(root, bad, "f")


def test_confine_refuses_symlinks_leading_out(dirs):
    root, outside = dirs
    (root / "dir").symlink_to(outside)
    plant(root / "live.mp4", outside / "live.mp4")
    plant(root / "dangling.mp4", outside / "dangling.mp4", None)
    for name in ("dir/x.mp4", "live.mp4", "dangling.mp4"):
        with pytest.raises(EgressError, match="escapes the recordings directory"):
            confine(root, name, "f")
    # a link that stays inside resolves to its target: the path used is the one checked
    (root / "inner").mkdir()
    (root / "alias").symlink_to(root / "inner")
    assert confine(root, "alias/x.mp4", "f") == root / "inner/x.mp4"


def test_names_the_os_refuses_are_invalid_arguments(dirs):
    root, _ = dirs
    for bad in ("a" * 256, f"{'a' * 300}.mp4", f"{'é' * 128}/x.mp4", "a\udc80.mp4", "a\ud800.mp4", "a\x00.mp4"):
        with _invalid("file_outputs[0].filepath"):
            confine(root, bad, "file_outputs[0].filepath")
    assert confine(root, "a" * 255, "f") == root / ("a" * 255)
    with _invalid("f"):  # the whole path must fit PATH_MAX too
        confine(root, "/".join(["d" * 200] * 21), "f")


def test_unique_path_skips_dangling_symlinks(dirs):
    root, outside = dirs
    plant(root / "rec.mp4", outside / "x.mp4", None)
    assert unique_path(root / "rec.mp4") == root / "rec-1.mp4"


@pytest.mark.parametrize("field", ["playlist_name", "live_playlist_name"])
def test_absolute_playlist_names_are_refused(dirs, field):
    root, outside = dirs
    for name in (f"{outside}/x.m3u8", f"/{outside}/x.m3u8", "/tmp/x.m3u8", "//tmp/x.m3u8", "../x.m3u8",
                 "other/x.m3u8"):
        req = _composite(segment_outputs=[api.SegmentedFileOutput(filename_prefix="hls/seg", **{field: name})])
        with _invalid(f"segment_outputs[0].{field}"):
            _resolve(req, root)
        # StartEgress outputs[].segments reach the same resolver
        unified = api.StartEgressRequest(room_name="r", template=api.TemplateSource(layout="grid"), outputs=[
            api.Output(segments=api.SegmentedFileOutput(filename_prefix="hls/seg", **{field: name}))])
        with _invalid(f"segment_outputs[0].{field}"):
            _resolve(unified_to_composite(unified), root)
        # the legacy oneof too
        with _invalid(f"segments.{field}"):
            _resolve(_composite(segments=api.SegmentedFileOutput(filename_prefix="hls/seg", **{field: name})), root)
    assert list(outside.iterdir()) == []


def test_playlists_resolve_to_a_name_beside_the_segments(dirs):
    root, _ = dirs
    for playlist, live in (("index.m3u8", "live"), ("hls/index", "hls/live.m3u8"), ("/hls/index.m3u8", "//hls/live")):
        (seg,) = _resolve(_composite(segment_outputs=[api.SegmentedFileOutput(
            filename_prefix="hls/seg", playlist_name=playlist, live_playlist_name=live)]), root).segments
        assert (seg.directory, seg.prefix, seg.playlist, seg.live_playlist) == (
            str(root / "hls"), "seg", "index.m3u8", "live.m3u8")


def test_every_target_is_an_absolute_directory_and_single_names(dirs):
    root, _ = dirs
    out = _resolve(_composite(file_outputs=[api.EncodedFileOutput(filepath="//a/b/../rec")],
                              segment_outputs=[api.SegmentedFileOutput(filename_prefix="/h/seg")],
                              image_outputs=[api.ImageOutput(filename_prefix="//i/thumb")]), root)
    assert out.files[0].path == str(root / "a/rec.mp4") and out.files[0].filename == "a/rec.mp4"
    assert (out.segments[0].directory, out.segments[0].prefix, out.segments[0].playlist) == (
        str(root / "h"), "seg", "seg.m3u8")
    assert (out.images[0].directory, out.images[0].prefix) == (str(root / "i"), "thumb")


def test_long_names_are_refused_at_request_time(dirs):
    root, _ = dirs
    long = "n" * 300
    cases = [
        (_composite(file_outputs=[api.EncodedFileOutput(filepath=long)]), "file_outputs[0].filepath"),
        # 252 + ".mp4" fits NAME_MAX, but not the manifest's ".json" beside it
        (_composite(file_outputs=[api.EncodedFileOutput(filepath="n" * 252)]), "file_outputs[0].filepath"),
        (_composite(file=api.EncodedFileOutput(filepath=f"d/{long}.mp4")), "file.filepath"),
        # a segment's name is the prefix plus "_00000.ts" or a UTC stamp
        (_composite(segment_outputs=[api.SegmentedFileOutput(filename_prefix="s" * 250)]),
         "segment_outputs[0].filename_prefix"),
        (_composite(segment_outputs=[api.SegmentedFileOutput(filename_prefix="s", playlist_name=long)]),
         "segment_outputs[0].playlist_name"),
        (_composite(segment_outputs=[api.SegmentedFileOutput(filename_prefix="s", live_playlist_name=long)]),
         "segment_outputs[0].live_playlist_name"),
        (_composite(image_outputs=[api.ImageOutput(filename_prefix="i" * 240)]), "image_outputs[0].filename_prefix"),
    ]
    for req, field in cases:
        with _invalid(field):
            _resolve(req, root)
    (ok,) = _resolve(_composite(file_outputs=[api.EncodedFileOutput(filepath="n" * 246)]), root).files
    assert Path(ok.path).name == "n" * 246 + ".mp4"

    track = api.TrackInfo(sid="TR_1", type=api.TrackType.AUDIO)
    with _invalid("file.filepath"):
        resolve_track_egress(api.TrackEgressRequest(room_name="r", track_id="TR_1",
                                                    file=api.DirectFileOutput(filepath=long)),
                             track, root=root, values={})


# ---- the disk: nothing written through a symlink -------------------------------------------------------


def test_open_new_never_follows_or_overwrites(dirs):
    root, outside = dirs
    live = [plant(root / "live.mp4", outside / "live")]
    plant(root / "dangling.mp4", outside / "dangling", None)
    (root / "file.mp4").write_bytes(b"old")
    for name in ("live.mp4", "dangling.mp4", "file.mp4"):
        with pytest.raises(FileExistsError):
            open_new(root / name)
    assert (root / "file.mp4").read_bytes() == b"old"
    with open_new(root / "new/dir/rec.mp4") as f:
        f.write(b"data")
    assert (root / "new/dir/rec.mp4").read_bytes() == b"data"
    assert_untouched(outside, live)


def test_uploads_read_the_recording_never_a_link_put_in_its_place(dirs):
    """A file swapped for a symlink after it was written is not read (uploads open with O_NOFOLLOW)."""
    from obstore.store import MemoryStore

    from pyegress.storage.base import ObjectStorage

    class Memory(ObjectStorage):
        def store(self):
            return memory

    memory = MemoryStore()
    root, outside = dirs
    (outside / "secret").write_bytes(b"secret")
    (root / "rec.mp4").write_bytes(b"recording")
    (root / "swapped.mp4").symlink_to(outside / "secret")
    (root / "d").symlink_to(outside)
    target = Memory()
    target._put(root / "rec.mp4", "rec.mp4")
    assert bytes(memory.get("rec.mp4").bytes()) == b"recording"
    for path in (root / "swapped.mp4", root / "d" / "secret"):
        with pytest.raises(OSError):
            target._put(path, "stolen")
        with pytest.raises(OSError):
            open_existing(path)
    with pytest.raises(FileNotFoundError):
        memory.get("stolen")


def test_no_directory_on_the_way_may_be_a_symlink(dirs):
    root, outside = dirs
    (root / "d").symlink_to(outside)
    (root / "dangling").symlink_to(outside / "missing")
    (root / "file").write_bytes(b"")
    for path in ("d/x.mp4", "d/sub/x.mp4", "dangling/x.mp4", "file/x.mp4"):
        with pytest.raises(OSError, match="not written through"):
            open_new(root / path)
        with pytest.raises(OSError, match="not written through"):
            replace_atomically(root / path, b"x")
        with pytest.raises(OSError, match="not written through"):
            LocalDir((root / path).parent)
    assert list(outside.iterdir()) == []


def test_paths_and_names_must_be_plain(dirs):
    root, _ = dirs
    for path in ("relative/x", f"{root}/../x", f"/{root}/x"):
        with pytest.raises(InvalidPath):
            open_new(path)
    with LocalDir(root) as d:
        for name in ("", ".", "..", "a/b", "a\x00", "n" * 256, "a\udc80"):
            with pytest.raises(InvalidPath):
                d.create(name)
            with pytest.raises(InvalidPath):
                d.replace(name, b"")


def test_replace_atomically_replaces_links_instead_of_following(dirs):
    root, outside = dirs
    live = [plant(root / "rec.mp4.json", outside / "manifest")]
    plant(root / "p.m3u8", outside / "playlist", None)
    replace_atomically(root / "rec.mp4.json", b"{}")
    replace_atomically(root / "p.m3u8", b"#EXTM3U\n")
    for name, data in (("rec.mp4.json", b"{}"), ("p.m3u8", b"#EXTM3U\n")):
        assert not (root / name).is_symlink() and (root / name).read_bytes() == data
    assert sorted(p.name for p in root.iterdir()) == ["p.m3u8", "rec.mp4.json"]  # no temp file left
    assert_untouched(outside, live)


def _frames(encoder: MediaEncoder, seconds: float):
    """Encoded packets of ``seconds`` of grey picture with silence, as the encoder thread hands them out."""
    s = encoder.settings
    picture = av.VideoFrame.from_ndarray(np.full((s.height * 3 // 2, s.width), 128, np.uint8), format="yuv420p")
    block = s.audio_frequency // s.framerate
    for i in range(int(seconds * s.framerate)):
        yield "video", encoder.encode_video(picture, i), picture, i
        yield "audio", encoder.encode_audio(np.zeros((block, 2), np.int16), i * block), None, i
    yield "video", encoder.encode_video(None), None, 0
    yield "audio", encoder.encode_audio(None), None, 0


def test_outputs_never_write_through_planted_links(dirs):
    """File, segments and thumbnails with links planted at their outputs, the old temp names and the
    directory's: each output writes in place of the link or fails, and nothing outside changes."""
    root, outside = dirs
    d = root / "room"
    live = [plant(d / "seg_00000.ts", outside / "seg0"), plant(d / "seg.m3u8", outside / "playlist"),
            plant(d / "thumb_00000.jpeg", outside / "thumb0"), plant(d / "thumb_00001.jpeg.tmp", outside / "tmp1")]
    for name in ("seg_00001.ts", "live.m3u8", "seg.m3u8.tmp", "live.m3u8.tmp", "thumb_00000.jpeg.tmp",
                 "thumb_00001.jpeg"):
        plant(d / name, outside / f"dangling-{name}", None)
    plant(d / "rec.mp4", outside / "dangling-rec.mp4", None)
    settings = EncodingSettings(width=64, height=64, framerate=10, key_frame_interval=1)
    encoder = MediaEncoder(settings, video=True, audio=True)
    # the name is taken (by a link): the handler writes the next free name instead, and reports it
    file = FileOutput(FileTarget(path=str(d / "rec.mp4"), filename="room/rec.mp4"), encoder, 0)
    assert (file.target.path, file.target.filename) == (str(d / "rec-1.mp4"), "room/rec-1.mp4")
    assert (d / "rec.mp4").is_symlink() and not (outside / "dangling-rec.mp4").exists()
    segments = SegmentsOutput(SegmentsTarget(directory=str(d), prefix="seg", playlist="seg.m3u8",
                                             live_playlist="live.m3u8", segment_duration=1), encoder, 0)
    images = ImagesOutput(ImagesTarget(directory=str(d), prefix="thumb", interval_s=1), 64, 64, 10, 0)
    for kind, packets, picture, pts in _frames(encoder, 2.5):
        file.write_packets(kind, packets)
        segments.write_packets(kind, packets)
        if picture is not None:
            images.write_frame(picture, pts)
    for out in (file, segments, images):
        out.close()
    encoder.close()

    assert_untouched(outside, live)
    assert segments.result().segment_count == 3 and images.result().image_count == 3
    written = ["rec-1.mp4", "seg_00000.ts", "seg_00001.ts", "seg_00002.ts", "seg.m3u8", "live.m3u8",
               "thumb_00000.jpeg", "thumb_00001.jpeg", "thumb_00002.jpeg"]
    for name in written:
        assert (d / name).is_file() and not (d / name).is_symlink(), name
    assert ffprobe(d / "seg_00001.ts").stream("video")["codec_name"] == "h264"
    assert "seg_00002.ts" in (d / "seg.m3u8").read_text()
    assert file.result(0).size == (d / "rec-1.mp4").stat().st_size > 0
    # no temp file is left behind
    assert not [p for p in d.iterdir() if p.name.startswith(".pyegress-")]


def test_outputs_refuse_a_directory_link_planted_after_the_request(dirs):
    root, outside = dirs
    (root / "room").symlink_to(outside)
    encoder = MediaEncoder(EncodingSettings(width=64, height=64, framerate=10), video=True, audio=True)
    with pytest.raises(OSError, match="not written through"):
        FileOutput(FileTarget(path=str(root / "room/rec.mp4"), filename="room/rec.mp4"), encoder, 0)
    with pytest.raises(OSError, match="not written through"):
        SegmentsOutput(SegmentsTarget(directory=str(root / "room/hls"), prefix="s", playlist="s.m3u8"), encoder, 0)
    with pytest.raises(OSError, match="not written through"):
        ImagesOutput(ImagesTarget(directory=str(root / "room"), prefix="t"), 64, 64, 10, 0)
    encoder.close()
    assert list(outside.iterdir()) == []


# ---- end to end: a real livekit-server and a real `pyegress serve` ------------------------------------------


async def _refused(egress_api, start, field: str) -> None:
    """``start`` must be refused with invalid_argument naming ``field``; an egress it started anyway is stopped."""
    try:
        info = await start
    except api.TwirpError as e:
        assert e.code == "invalid_argument" and field in e.message, (e.code, e.message)
        return
    await egress_api.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
    await wait_status(egress_api, info.egress_id, lambda i: i.status in ENDED)
    pytest.fail(f"accepted ({field}): {info}")


async def test_e2e_names_leading_out_are_refused(egress_api, lkapi, room_name, egress_server, tmp_path):
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    outside = tmp_path / "outside"
    outside.mkdir()
    root = egress_server.recordings_dir.resolve()
    plant(root / room_name / "planted.mp4", outside / "planted.mp4", None)
    plant(root / room_name / "planted.m3u8", outside / "planted.m3u8", None)
    segments = api.SegmentedFileOutput
    starts = [
        (egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
            room_name=room_name, segment_outputs=[segments(filename_prefix="seg", playlist_name=f"{outside}/x.m3u8")])),
         "segment_outputs[0].playlist_name"),
        (egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
            room_name=room_name, segment_outputs=[segments(filename_prefix=f"{room_name}/seg",
                                                           live_playlist_name=f"/{outside}/live.m3u8")])),
         "segment_outputs[0].live_playlist_name"),
        (egress_api.egress.start_egress(api.StartEgressRequest(
            room_name=room_name, template=api.TemplateSource(layout="grid"),
            outputs=[api.Output(segments=segments(filename_prefix="seg", playlist_name=f"//{outside}/u.m3u8"))])),
         "playlist_name"),
        (egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
            room_name=room_name, file_outputs=[api.EncodedFileOutput(filepath=f"{room_name}/planted.mp4")])),
         "file_outputs[0].filepath"),
        (egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
            room_name=room_name, segment_outputs=[segments(filename_prefix=f"{room_name}/seg",
                                                           playlist_name="planted.m3u8")])),
         "segment_outputs[0].playlist_name"),
        # ENAMETOOLONG was a 500: the name is refused naming its field
        (egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
            room_name=room_name, file_outputs=[api.EncodedFileOutput(filepath="x" * 300 + ".mp4")])),
         "file_outputs[0].filepath"),
    ]
    for start, field in starts:
        await _refused(egress_api, start, field)
    assert list(outside.iterdir()) == []
    assert not (root / str(outside).lstrip("/")).exists()


async def test_e2e_planted_symlinks_are_not_followed(egress_api, lkapi, publishers, room_name, egress_server,
                                                     tmp_path):
    """Links planted where the manifest, segments, playlist temp files and thumbnail temp files of a real
    egress go (live and dangling): it completes, writing its own files there; every target outside stays
    as it was."""
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1)
    outside = tmp_path / "outside"
    outside.mkdir()
    d = egress_server.recordings_dir.resolve() / room_name
    live = [plant(d / "rec.mp4.json", outside / "manifest"), plant(d / "seg_00000.ts", outside / "seg0"),
            plant(d / "thumb_00000.jpeg.tmp", outside / "thumb0-tmp"), plant(d / "seg.m3u8.json", outside / "pl")]
    for name in ("seg_00001.ts", "seg.m3u8.tmp", "thumb_00001.jpeg.tmp", "thumb_00000.jpeg"):
        plant(d / name, outside / f"dangling-{name}", None)

    info = await egress_api.egress.start_room_composite_egress(api.RoomCompositeEgressRequest(
        room_name=room_name, advanced=api.EncodingOptions(width=320, height=180),
        file_outputs=[api.EncodedFileOutput(filepath="{room_name}/rec.mp4")],
        segment_outputs=[api.SegmentedFileOutput(filename_prefix="{room_name}/seg", segment_duration=1)],
        image_outputs=[api.ImageOutput(capture_interval=1, filename_prefix="{room_name}/thumb")]))
    active, _ = await wait_status(egress_api, info.egress_id, lambda i: i.status in (S.EGRESS_ACTIVE, *ENDED))
    assert active.status == S.EGRESS_ACTIVE, active.error
    await asyncio.sleep(3.5)
    await egress_api.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
    final, _ = await wait_status(egress_api, info.egress_id, lambda i: i.status in ENDED)

    assert_untouched(outside, live)
    assert final.status == S.EGRESS_COMPLETE, final.error
    assert final.file_results[0].filename == f"{room_name}/rec.mp4"
    assert final.segment_results[0].segment_count >= 3 and final.image_results[0].image_count >= 3
    for name in ("rec.mp4", "rec.mp4.json", "seg_00000.ts", "seg_00001.ts", "seg.m3u8", "seg.m3u8.json",
                 "thumb_00000.jpeg", "thumb_00001.jpeg"):
        assert (d / name).is_file() and not (d / name).is_symlink(), name
    assert final.manifest_location == str(d / "rec.mp4.json")
    assert json.loads((d / "rec.mp4.json").read_text())["egress_id"] == info.egress_id
    assert ffprobe(d / "seg_00000.ts").stream("video")["codec_name"] == "h264"
    assert os.path.realpath(final.segment_results[0].playlist_location) == str(d / "seg.m3u8")


def test_egress_ids_from_livekit_server_cannot_name_a_path():
    """livekit-server chooses the IDs of its jobs; an ID names the egress's log file."""
    from pyegress.service.egress_service import StartOptions

    assert StartOptions(egress_id="EG_abc123XYZ").chosen_egress_id() == "EG_abc123XYZ"
    assert StartOptions().chosen_egress_id().startswith("EG_")
    for bad in ("../../etc/x", "EG_a/b", "", "EG_\x00", "x" * 65):
        if bad:
            with _invalid("egress_id"):
                StartOptions(egress_id=bad).chosen_egress_id()


async def test_e2e_two_egresses_asking_for_one_name_both_keep_their_file(egress_api, lkapi, publishers,
                                                                         room_name, egress_server):
    """Both requests resolve the same free name before either file exists: the second gets ``-1``,
    reported in its results and with a manifest of its own, and neither file is overwritten."""
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name))
    publishers(room_name, 1)
    req = api.RoomCompositeEgressRequest(room_name=room_name, advanced=api.EncodingOptions(width=320, height=180),
                                         file_outputs=[api.EncodedFileOutput(filepath="{room_name}/same.mp4")])
    first = await egress_api.egress.start_room_composite_egress(req)
    second = await egress_api.egress.start_room_composite_egress(req)
    for info in (first, second):
        await wait_status(egress_api, info.egress_id, lambda i: i.status == S.EGRESS_ACTIVE)
    await asyncio.sleep(2)
    finals = []
    for info in (first, second):
        await egress_api.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
        finals.append((await wait_status(egress_api, info.egress_id, lambda i: i.status in ENDED))[0])
    assert [f.status for f in finals] == [S.EGRESS_COMPLETE] * 2, finals
    names = sorted(f.file_results[0].filename for f in finals)
    assert names == [f"{room_name}/same-1.mp4", f"{room_name}/same.mp4"]
    for final in finals:
        result = final.file_results[0]
        assert result.location == str(egress_server.recordings_dir.resolve() / result.filename)
        assert ffprobe(result.location).duration > 1.5
        manifest = json.loads(Path(result.location + ".json").read_text())
        assert manifest["egress_id"] == final.egress_id
