"""The request bodies of RealtimeKit's recordings resource as the ``cloudflare`` SDK 5.x sends them
(``realtime_kit.recordings``; both request generations, docs/wire.md and docs/realtimekit.md).

Unknown keys are ignored (SDK 5.3+ sends the older ``outputs``/``max_seconds`` as extra body); every
string is refused if it holds a lone surrogate, naming its field. Storage credentials are write-only.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator



def _lone_surrogate(value: Any) -> bool:
    """Whether a parsed JSON value holds a string UTF-8 cannot encode (JSON's ``"\\ud800"``)."""
    if isinstance(value, str):
        return not value.isascii() and any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, (list, tuple)):
        return any(_lone_surrogate(v) for v in value)
    if isinstance(value, dict):
        return any(_lone_surrogate(k) or _lone_surrogate(v) for k, v in value.items())
    return False


class _Body(BaseModel):
    # Extra keys pass: SDK 5.3+ sends the old ``outputs``/``max_seconds`` as extra body.
    model_config = ConfigDict(extra="ignore")

    @field_validator("*", mode="after")
    @classmethod
    def _text(cls, value: Any) -> Any:
        # strings end up in file names, the database and URLs, none of which take a lone surrogate
        if _lone_surrogate(value):
            raise ValueError("must be valid Unicode text (it has a lone surrogate)")
        return value


class StorageConfig(_Body):
    """RealtimeKit's ``storage_config``; ``access_key``, ``secret``, ``password`` and ``private_key`` are
    write-only (the SDK docs: "not readable by clients, only writeable")."""

    type: Literal["aws", "azure", "digitalocean", "gcs", "sftp"]
    access_key: str | None = None
    secret: str | None = None
    bucket: str | None = None
    region: str | None = None
    path: str | None = None
    host: str | None = None
    port: int | None = Field(None, ge=1, le=65535)  # the SDK types it float: 22.0 passes, 22.5 or Infinity not
    username: str | None = None
    password: str | None = None
    private_key: str | None = None
    auth_method: Literal["KEY", "PASSWORD"] | None = None

    def public(self) -> dict:
        """The fields a reply may show (RealtimeKit's recording object ``storage_config``)."""
        return self.model_dump(exclude={"access_key", "secret", "password", "private_key"}, exclude_none=True)


class LayerOutput(_Body):
    """Where a track recording layer goes (SDK 5.0-5.2): RealtimeKit's bucket or ``storage_config``."""

    type: Literal["REALTIMEKIT_BUCKET", "STORAGE_CONFIG"] = "REALTIMEKIT_BUCKET"
    storage_config: StorageConfig | None = None

    @model_validator(mode="after")
    def _config_present(self) -> "LayerOutput":
        if self.type == "STORAGE_CONFIG" and self.storage_config is None:
            raise ValueError("type STORAGE_CONFIG needs a storage_config")
        return self


class Layer(_Body):
    """A track recording layer: 5.0-5.2 ``file_name_prefix`` + ``outputs``; 5.3+ ``media_kind``."""

    file_name_prefix: str | None = None
    media_kind: Literal["audio", "video"] | None = None
    outputs: list[LayerOutput] | None = None


class TrackStart(_Body):
    """``POST recordings/track`` of either SDK generation."""

    meeting_id: str = Field(min_length=1)
    layers: dict[str, Layer] | None = None
    user_ids: list[str] | None = Field(None, max_length=100)
    max_seconds: float | None = Field(None, gt=0)


class AudioConfig(_Body):
    channel: Literal["mono", "stereo"] | None = None
    codec: Literal["MP3", "AAC"] | None = None
    export_file: bool | None = None


class VideoConfig(_Body):
    codec: Literal["H264", "VP8", "VP9"] | None = None
    width: int | None = None
    height: int | None = None
    export_file: bool | None = None
    watermark: dict | None = None


class RtmpOutConfig(_Body):
    rtmp_url: str | None = None


class BucketConfig(_Body):
    enabled: bool


class CompositeStart(_Body):
    """``POST recordings`` (start_recordings): a composite recording of the meeting."""

    meeting_id: str = Field(min_length=1)
    audio_config: AudioConfig | None = None
    video_config: VideoConfig | None = None
    storage_config: StorageConfig | None = None
    realtimekit_bucket_config: BucketConfig | None = None
    max_seconds: int | None = Field(None, ge=60, le=86400)  # "from 60 seconds to 24 hours" (SDK docs)
    file_name_prefix: str | None = None
    url: str | None = None
    rtmp_out_config: RtmpOutConfig | None = None
    interactive_config: dict | None = None
    allow_multiple_recordings: bool = False


class Action(_Body):
    """``PUT recordings/{id}`` (pause_resume_stop_recording)."""

    action: Literal["stop", "pause", "resume"]
