"""Service configuration: LiveKit egress's ``config.yaml`` keys, ``PYEGRESS_*`` variables, or both.

Sources, highest first: ``PYEGRESS_*`` environment variables (and a ``.env``
file), then the YAML file named by ``PYEGRESS_CONFIG`` (or LiveKit's
``EGRESS_CONFIG_FILE``) or the YAML text in ``EGRESS_CONFIG_BODY``. The YAML
takes the key names of LiveKit's Go egress (``api_key``, ``api_secret``,
``ws_url``, ``redis``, ``storage``, ``backup``, ``cpu_cost``,
``session_limits``, ``logging``; livekit/egress ``pkg/config``), so an existing
deployment's file works unchanged. A key neither pyegress nor LiveKit egress knows stops the start with
its name (``config_keys``); LiveKit's keys that pyegress does not use are reported as ignored.
``LIVEKIT_API_KEY`` / ``LIVEKIT_API_SECRET`` / ``LIVEKIT_WS_URL`` are honoured
too. Defaults are the embedded ones: SQLite, local disk under ``./recordings``,
a livekit-server in dev mode on ``ws://127.0.0.1:7880`` with keys devkey/secret.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from dotenv import dotenv_values
from pydantic import AliasChoices, BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


class RedisConfig(BaseModel):
    """LiveKit's ``redis:`` block (livekit/protocol ``redis.RedisConfig``); ``address`` is ``host:port``."""

    address: str = ""
    username: str = ""
    password: str = ""
    db: int = 0
    use_tls: bool = False

    @property
    def configured(self) -> bool:
        return bool(self.address)


class CPUCostConfig(BaseModel):
    """LiveKit's ``cpu_cost:`` block: the CPU cores each egress type reserves, and the share of the
    machine's cores (``max_cpu_utilization``, 0-1) a worker fills before it stops claiming.

    The same budget admits ``pyegress serve``'s own API starts and livekit-server's jobs. Defaults are what
    pyegress's workers use, measured (cores of the worker's process tree while recording 1280x720 30 fps,
    ``bench/start_latency.py`` and ``bench/composite.py``, ``bench/RESULTS.md``) and rounded up; the Go egress's
    (Chrome + GStreamer) are in brackets. Room composite 0.34-0.38 with 2 publishers, 0.48-0.62 with 4 → 0.5
    [4]; audio-only 0.08-0.10 → 0.1 [1]; web (Chromium) 0.83-1.0 for a page playing video (1.7 for a canvas
    redrawn every frame) → 1.0 [4]; audio-only web 0.25 → 0.3 [1]; participant 0.47 → 0.5 [2]; track
    composite 0.48 → 0.5 [1] (one picture scaled up to the output costs more than a grid); track egress 0.12-0.14
    for video, 0.05-0.07 for audio → 0.15 [0.5]. With ``max_cpu_utilization`` 0.8 a 2-core machine runs 3
    composites at once. A deployment's file overrides them.
    """

    max_cpu_utilization: float = 0.8
    room_composite_cpu_cost: float = 0.5
    audio_room_composite_cpu_cost: float = 0.1
    web_cpu_cost: float = 1.0
    audio_web_cpu_cost: float = 0.3
    participant_cpu_cost: float = 0.5
    track_composite_cpu_cost: float = 0.5
    track_cpu_cost: float = 0.15


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration_s(value: Any) -> float:
    """Seconds from a Go duration string (``"1h30m"``, ``"90s"``, ``"500ms"``; Go ``time.ParseDuration``)
    or a number of seconds.

    Raises:
        ValueError: not a duration.
    """
    if isinstance(value, (int, float)):
        return float(value)
    text, total = str(value).strip(), 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text):
        total += float(number) * _DURATION_UNITS[unit]
    if not text or re.sub(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", "", text):
        raise ValueError(f"{value!r} is not a duration like 90s, 30m or 1h30m")
    return total


class SessionLimits(BaseModel):
    """LiveKit's ``session_limits:`` (livekit/egress ``pkg/config/base.go``; 0 = none): the longest an egress
    with an output of each kind may run (s or Go durations like ``3h``), and ``file_output_max_size``, the
    bytes all its local outputs (files, segments, images) may hold; reaching one ends it EGRESS_LIMIT_REACHED."""

    file_output_max_duration: float = 0.0
    stream_output_max_duration: float = 0.0
    segment_output_max_duration: float = 0.0
    image_output_max_duration: float = 0.0
    file_output_max_size: int = Field(0, ge=0)

    @field_validator("file_output_max_duration", "stream_output_max_duration", "segment_output_max_duration",
                     "image_output_max_duration", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration_s(value)


class LoggingConfig(BaseModel):
    """LiveKit's ``logging:`` block; ``level`` is debug|info|warn|error."""

    level: str = "info"


class ConfigError(ValueError):
    """The config file is missing, is not YAML mapping keys to values, or has keys no one knows."""


def read_config_file(path: str | Path | None = None) -> tuple[str, dict[Any, Any]]:
    """The config YAML pyegress reads, as ``(where, mapping)``: the file ``path``, else the one named by
    ``PYEGRESS_CONFIG`` / ``EGRESS_CONFIG_FILE``, else the text of ``EGRESS_CONFIG_BODY``; ``{}`` for none.

    Raises:
        ConfigError: the file cannot be read, is not YAML, or is not a mapping.
    """
    path = path or os.environ.get("PYEGRESS_CONFIG") or os.environ.get("EGRESS_CONFIG_FILE")
    source = str(path or "EGRESS_CONFIG_BODY")
    try:
        body = Path(path).read_text() if path else os.environ.get("EGRESS_CONFIG_BODY", "")
        data = yaml.safe_load(body) if body.strip() else {}
    except OSError as e:
        raise ConfigError(f"config {source}: {e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config {source}: {_yaml_problem(e)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {source}: the YAML must be a mapping of keys")
    return source, data


def _yaml_problem(e: yaml.YAMLError) -> str:
    """The YAML error without PyYAML's quote of the line, which may hold a secret."""
    mark = getattr(e, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return f"invalid YAML: {getattr(e, 'problem', None) or type(e).__name__}{where}"


class _YamlSource(PydanticBaseSettingsSource):
    """Settings from LiveKit-style YAML (:func:`read_config_file`); a key no one knows is an error."""

    def __init__(self, settings_cls: type[BaseSettings], path: str | Path | None = None) -> None:
        from .config_keys import check_env, check_keys

        super().__init__(settings_cls)
        source, data = read_config_file(path)
        problems = [f"config {source}: {p}" for p in check_keys(data).problems()]
        problems += [f"environment: {p}" for p in check_env(dict(os.environ))]
        dotenv = Path(".env")  # pydantic-settings reads it too (model_config env_file)
        if dotenv.is_file():
            problems += [f"{dotenv}: {p}" for p in check_env(dict(dotenv_values(dotenv)))]
        if problems:
            raise ConfigError("\n".join(problems))
        self.data = {k: v for k, v in data.items() if k in settings_cls.model_fields}

    def get_field_value(self, field, field_name: str) -> tuple[Any, str, bool]:  # required by the base class
        return self.data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.data)


def _split(urls: str) -> list[str]:
    return [u.strip() for u in urls.split(",") if u.strip()]


class Settings(BaseSettings):
    """pyegress settings.

    ``api_key``/``api_secret``: the LiveKit key pair; it verifies API tokens and
    signs the recorder's room tokens. ``ws_url``: where livekit-server is.
    ``recordings_dir``: root of every local output path (requests cannot
    escape it). ``empty_timeout_s``: seconds a room composite keeps recording
    after the last participant left. ``progress_interval_s``: how often an
    active egress refreshes its results (sizes, durations) and ``updated_at``.
    ``max_duration_s``: an egress ends with EGRESS_LIMIT_REACHED (outputs
    finished) after this long; 0 means no limit. ``webhook_urls``: comma-separated
    URLs that receive LiveKit webhooks for every egress. ``rtcstack_webhook_urls``:
    comma-separated URLs that receive RTCstack's own ``egress_ended`` JSON when a
    recording started through ``/v1/rooms/{roomId}/recording`` ends (``docs/wire.md``, RTCstack). ``upload_attempts`` and
    ``upload_retry_base_s``: tries per upload and the first wait between them
    (doubling, each at most ``upload_retry_max_s`` when that is set); a file whose upload fails for
    good stays in ``recordings_dir``. Unless set themselves, they come from the ``storage.s3`` block's
    ``max_retries``, ``min_retry_delay`` and ``max_retry_delay`` (LiveKit's S3 retryer settings).
    ``storage`` / ``backup``: LiveKit's default upload destination for requests
    that name none, and where files go when an upload fails for good (the
    ``storage:`` block's shape: ``s3``/``azure``/``gcp``/``alioss`` + ``prefix``; pyegress adds ``sftp``
    and ``endpoint`` for ``azure``/``gcp``; ``storage.from_config`` reads them). ``stream_uploads``: MP4
    files go to object storage while they are recorded (multipart), so stopping waits only for the tail.
    ``ending_timeout_s``: the longest an egress may take from StopEgress (or its own ending) to its end,
    uploads at the end included; a worker still running then is killed and its egress ends FAILED.
    ``redis``: with an ``address``, pyegress also works as an egress worker of
    livekit-server over psrpc. ``cpu_cost``: admission of jobs by CPU.
    ``public_url``: the base URL clients reach pyegress at, for the download links it signs (never taken
    from a request's ``Host``); default ``http://{host}:{port}``. ``max_body_bytes``: the largest request
    body accepted (413 beyond it). ``handler_pool_size``: worker processes kept started and imported, waiting
    for an egress, so a start skips Python's imports (0: start each worker when needed). ``track_receiver``: how
    a track egress to a file receives: ``packets`` writes the publisher's samples unchanged (the packet receiver,
    docs/receiver.md), ``sdk`` decodes through the ``livekit`` SDK and encodes again. ``composite_receiver``: how
    every other room egress (room composite, participant, track composite, websocket track) receives: ``packets``
    (encoded samples from the packet receiver, decoded here and placed by the sync engine's timestamps, each
    tile at the simulcast layer that fits it; the default, as it costs less CPU and keeps A/V closer, see
    bench/RESULTS.md) or ``sdk`` (decoded frames from the ``livekit`` SDK, timed by their arrival).
    ``list_egress_page_size``: the items in one page of a ListEgress that asks for pages (``page_token``).
    ``preview_dir``: where workers write the live preview JPEG of an egress someone watches
    (``GET /egress/{egress_id}/preview.jpg``), one file per egress, removed when it ends.
    ``prometheus_port``: LiveKit egress's key; when set, Prometheus metrics are served on ``host`` at that port
    (``/metrics``, docs/metrics.md); 0 serves none.
    """

    model_config = SettingsConfigDict(env_prefix="PYEGRESS_", env_file=".env", extra="ignore",
                                      env_nested_delimiter="__", populate_by_name=True)

    api_key: str = Field("devkey", validation_alias=AliasChoices("PYEGRESS_API_KEY", "LIVEKIT_API_KEY", "api_key"))
    api_secret: str = Field("secret", validation_alias=AliasChoices("PYEGRESS_API_SECRET", "LIVEKIT_API_SECRET",
                                                                    "api_secret"))
    ws_url: str = Field("ws://127.0.0.1:7880", validation_alias=AliasChoices("PYEGRESS_WS_URL", "LIVEKIT_WS_URL",
                                                                             "ws_url"))
    host: str = "127.0.0.1"
    port: int = 8080
    recordings_dir: Path = Path("recordings")
    database_url: str = "sqlite:///var/pyegress.db"
    log_dir: Path = Path("var/logs")
    preview_dir: Path = Path("var/previews")
    empty_timeout_s: float = 10.0
    progress_interval_s: float = 5.0
    max_duration_s: float = 0.0
    webhook_urls: str = ""
    rtcstack_webhook_urls: str = ""
    upload_attempts: int = 6
    upload_retry_base_s: float = 1.0
    upload_retry_max_s: float = 0.0
    storage: dict[str, Any] | None = None
    backup: dict[str, Any] | None = None
    stream_uploads: bool = True
    ending_timeout_s: float = Field(600.0, gt=0)
    redis: RedisConfig = RedisConfig()
    cpu_cost: CPUCostConfig = CPUCostConfig()
    session_limits: SessionLimits = SessionLimits()
    logging: LoggingConfig = LoggingConfig()
    cluster_id: str = ""
    public_url: str = ""
    max_body_bytes: int = Field(4 * 1024 * 1024, gt=0)
    handler_pool_size: int = Field(3, ge=0)  # the default CPU budget of 2 cores admits 3 composites
    track_receiver: Literal["packets", "sdk"] = "packets"
    composite_receiver: Literal["packets", "sdk"] = "packets"
    list_egress_page_size: int = Field(100, gt=0)
    prometheus_port: int = Field(0, ge=0, le=65535)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        return init_settings, env_settings, dotenv_settings, _YamlSource(settings_cls), file_secret_settings

    @model_validator(mode="after")
    def _s3_retries(self) -> "Settings":
        s3 = (self.storage or {}).get("s3")
        if not isinstance(s3, dict):
            return self
        for key, name, read in (("max_retries", "upload_attempts", int),
                                ("min_retry_delay", "upload_retry_base_s", parse_duration_s),
                                ("max_retry_delay", "upload_retry_max_s", parse_duration_s)):
            if s3.get(key) and name not in self.model_fields_set:
                try:
                    setattr(self, name, read(s3[key]))
                except ValueError as e:
                    raise ValueError(f"storage.s3.{key}: {e}") from None
        return self

    @property
    def webhook_url_list(self) -> list[str]:
        """``webhook_urls`` split on commas: where every egress event is sent."""
        return _split(self.webhook_urls)

    @property
    def rtcstack_webhook_url_list(self) -> list[str]:
        """``rtcstack_webhook_urls`` split on commas."""
        return _split(self.rtcstack_webhook_urls)

    @property
    def public_base_url(self) -> str:
        """``public_url``, else ``http://{host}:{port}`` (an IPv6 host in brackets): where download links point."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def http_url(self) -> str:
        """livekit-server's HTTP URL, derived from ``ws_url``."""
        return self.ws_url.replace("wss://", "https://", 1).replace("ws://", "http://", 1)


def settings_from_file(path: str | Path) -> Settings:
    """Settings as ``pyegress serve`` builds them with ``PYEGRESS_CONFIG=path`` (``PYEGRESS_*`` variables still
    win over the file).

    Raises:
        ConfigError: see :func:`read_config_file`; unknown keys.
        pydantic.ValidationError: a value is invalid.
    """
    class FromFile(Settings):
        @classmethod
        def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                       file_secret_settings):
            return init_settings, env_settings, dotenv_settings, _YamlSource(settings_cls, path), file_secret_settings

    return FromFile()
