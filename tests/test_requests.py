"""Request validation and resolution (no network)."""

from pathlib import Path

import pytest
from livekit import api
from livekit.protocol import models

from pyegress.errors import EgressError
from pyegress.service.requests.paths import confine, expand_placeholders
from pyegress.service.requests import resolve_encoding, resolve_outputs, validate_room_composite


def test_default_and_preset_encoding():
    assert resolve_encoding(api.RoomCompositeEgressRequest()).width == 1280
    req = api.RoomCompositeEgressRequest(preset=api.EncodingOptionsPreset.H264_1080P_60)
    enc = resolve_encoding(req)
    assert (enc.width, enc.height, enc.framerate, enc.video_bitrate) == (1920, 1080, 60, 6000)
    # value-0 preset present on the wire is an explicit H264_720P_30
    req = api.RoomCompositeEgressRequest.FromString(api.RoomCompositeEgressRequest(preset=0).SerializeToString())
    assert resolve_encoding(req).framerate == 30


def test_advanced_encoding_errors_name_the_field():
    req = api.RoomCompositeEgressRequest(advanced=api.EncodingOptions(width=1281))
    with pytest.raises(EgressError) as e:
        resolve_encoding(req)
    assert e.value.code == "invalid_argument" and "advanced.width" in e.value.msg
    req = api.RoomCompositeEgressRequest(advanced=api.EncodingOptions(framerate=120))
    with pytest.raises(EgressError, match="advanced.framerate"):
        resolve_encoding(req)
    req = api.RoomCompositeEgressRequest(advanced=api.EncodingOptions(video_codec=models.VideoCodec.H264_HIGH,
                                                                        width=640, height=360, framerate=15))
    enc = resolve_encoding(req)
    assert (enc.video_codec, enc.width, enc.framerate) == ("h264_high", 640, 15)


def test_placeholders():
    out = expand_placeholders("{room_name}/{room_id}-{time}-{utc}", {"room_name": "r", "room_id": "RM_1"})
    assert out.startswith("r/RM_1-20") and "{" not in out


def test_confine(tmp_path: Path):
    assert confine(tmp_path, "a/b.mp4", "f") == tmp_path.resolve() / "a/b.mp4"
    assert confine(tmp_path, "/out/b.mp4", "f") == tmp_path.resolve() / "out/b.mp4"
    for bad in ("../x.mp4", "a/../../x.mp4", "", "dir/"):
        with pytest.raises(EgressError) as e:
            confine(tmp_path, bad, "file_outputs[0].filepath")
        assert e.value.code == "invalid_argument" and "file_outputs[0].filepath" in e.value.msg
    (tmp_path / "link").symlink_to("/tmp")
    with pytest.raises(EgressError, match="escapes"):
        confine(tmp_path, "link/x.mp4", "f")


def _resolve(req, tmp_path):
    enc = resolve_encoding(req)
    return resolve_outputs(req, root=tmp_path, values={"room_name": req.room_name}, audio=not req.video_only,
                           video=not req.audio_only, encoding=enc)


def test_outputs_legacy_file_only_when_list_empty(tmp_path: Path):
    req = api.RoomCompositeEgressRequest(room_name="r", file=api.EncodedFileOutput(filepath="legacy.mp4"),
                                         file_outputs=[api.EncodedFileOutput(filepath="list.mp4")])
    out = _resolve(req, tmp_path)
    assert [f.filename for f in out.files] == ["list.mp4"] and out.legacy is None
    req = api.RoomCompositeEgressRequest(room_name="r", file=api.EncodedFileOutput(filepath="legacy"))
    out = _resolve(req, tmp_path)
    assert [f.filename for f in out.files] == ["legacy.mp4"] and out.legacy == "file"


def test_outputs_errors(tmp_path: Path):
    with pytest.raises(EgressError, match="no output"):
        _resolve(api.RoomCompositeEgressRequest(room_name="r"), tmp_path)
    req = api.RoomCompositeEgressRequest(room_name="r", file_outputs=[
        api.EncodedFileOutput(file_type=api.EncodedFileType.OGG)])
    with pytest.raises(EgressError, match="OGG"):
        _resolve(req, tmp_path)
    with pytest.raises(EgressError, match="room_name"):
        validate_room_composite(api.RoomCompositeEgressRequest())
    with pytest.raises(EgressError, match="layout"):
        validate_room_composite(api.RoomCompositeEgressRequest(room_name="r", layout="bogus"))


def test_existing_file_is_not_overwritten(tmp_path: Path):
    (tmp_path / "same.mp4").write_bytes(b"x")
    req = api.RoomCompositeEgressRequest(room_name="r", file_outputs=[api.EncodedFileOutput(filepath="same.mp4")])
    assert _resolve(req, tmp_path).files[0].filename == "same-1.mp4"


def test_file_formats(tmp_path: Path):
    def fmt(**kw):
        req = api.RoomCompositeEgressRequest(room_name="r", **{k: v for k, v in kw.items() if k != "out"},
                                             file_outputs=[kw["out"]])
        return _resolve(req, tmp_path).files[0]

    assert fmt(out=api.EncodedFileOutput(filepath="a")).format == "mp4"
    f = fmt(out=api.EncodedFileOutput(filepath="a"), audio_only=True)
    assert (f.format, f.filename) == ("ogg", "a.ogg")
    assert fmt(out=api.EncodedFileOutput(filepath="a.mp4"), audio_only=True).format == "mp4"
    assert fmt(out=api.EncodedFileOutput(filepath="v"),
               advanced=api.EncodingOptions(video_codec=models.VideoCodec.VP8)).format == "webm"
    with pytest.raises(EgressError, match="advanced.video_codec"):
        fmt(out=api.EncodedFileOutput(filepath="v.mp4"), advanced=api.EncodingOptions(video_codec=models.VideoCodec.VP8))
    with pytest.raises(EgressError, match="does not match"):
        fmt(out=api.EncodedFileOutput(filepath="v.ogg", file_type=api.EncodedFileType.MP4))


def test_segments_and_images(tmp_path: Path):
    req = api.RoomCompositeEgressRequest(
        room_name="r", segment_outputs=[api.SegmentedFileOutput(filename_prefix="hls/{room_name}", segment_duration=2,
                                                                live_playlist_name="live")],
        image_outputs=[api.ImageOutput(capture_interval=3, width=320, height=180, filename_prefix="thumbs/t")])
    enc = resolve_encoding(req)
    out = resolve_outputs(req, root=tmp_path, values={"room_name": "r"}, audio=True, video=True, encoding=enc)
    (seg,) = out.segments
    assert (seg.prefix, seg.playlist, seg.live_playlist, seg.segment_duration) == ("r", "r.m3u8", "live.m3u8", 2.0)
    assert seg.directory == str(tmp_path.resolve() / "hls") and seg.reported_prefix == "hls/"
    assert enc.key_frame_interval == 2.0  # segments are cut on keyframes: one per segment
    (img,) = out.images
    assert (img.prefix, img.interval_s, img.width) == ("t", 3.0, 320)
    bad = api.RoomCompositeEgressRequest(room_name="r", segment_outputs=[
        api.SegmentedFileOutput(filename_prefix="../../x")])
    with pytest.raises(EgressError, match=r"segment_outputs\[0\].filename_prefix"):
        _resolve(bad, tmp_path)


def test_segments_protocol(tmp_path: Path):
    def container(protocol):
        req = api.RoomCompositeEgressRequest(room_name="r", segment_outputs=[
            api.SegmentedFileOutput(filename_prefix="hls/x", protocol=protocol)])
        return _resolve(req, tmp_path).segments[0].container

    assert container(api.SegmentedFileProtocol.DEFAULT_SEGMENTED_FILE_PROTOCOL) == "ts"
    assert container(api.SegmentedFileProtocol.HLS_PROTOCOL) == "ts"
    assert container(api.SegmentedFileProtocol.HLS_FMP4_PROTOCOL) == "fmp4"
    with pytest.raises(EgressError, match=r"segment_outputs\[0\].protocol") as e:
        container(9)  # a value this proto does not know (protobuf keeps unknown enum numbers)
    assert e.value.code == "invalid_argument"


def test_mp3_is_audio_only(tmp_path: Path):
    req = api.RoomCompositeEgressRequest(room_name="r", audio_only=True, file_outputs=[
        api.EncodedFileOutput(filepath="a", file_type=api.EncodedFileType.MP3)])
    enc = resolve_encoding(req)
    out = resolve_outputs(req, root=tmp_path, values={}, audio=True, video=False, encoding=enc)
    assert (out.files[0].format, out.files[0].filename, enc.audio_codec) == ("mp3", "a.mp3", "mp3")
    req = api.RoomCompositeEgressRequest(room_name="r", file_outputs=[
        api.EncodedFileOutput(file_type=api.EncodedFileType.MP3)])
    with pytest.raises(EgressError, match="MP3 holds audio only"):
        _resolve(req, tmp_path)
