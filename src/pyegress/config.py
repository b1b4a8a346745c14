"""Service configuration, from environment variables ``PYEGRESS_*`` (or a ``.env`` file).

Defaults are the embedded ones: SQLite, local disk under ``./recordings``, a
livekit-server in dev mode on ``ws://127.0.0.1:7880`` with keys devkey/secret.
"""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


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
    URLs that receive LiveKit webhooks for every egress. ``upload_attempts`` and
    ``upload_retry_base_s``: tries per upload and the first wait between them
    (doubling); a file whose upload fails for good stays in ``recordings_dir``.
    """

    model_config = SettingsConfigDict(env_prefix="PYEGRESS_", env_file=".env", extra="ignore")

    api_key: str = "devkey"
    api_secret: str = "secret"
    ws_url: str = "ws://127.0.0.1:7880"
    host: str = "127.0.0.1"
    port: int = 8080
    recordings_dir: Path = Path("recordings")
    database_url: str = "sqlite:///var/pyegress.db"
    log_dir: Path = Path("var/logs")
    empty_timeout_s: float = 10.0
    progress_interval_s: float = 5.0
    max_duration_s: float = 0.0
    webhook_urls: str = ""
    upload_attempts: int = 6
    upload_retry_base_s: float = 1.0

    @property
    def webhook_url_list(self) -> list[str]:
        """``webhook_urls`` split on commas: where every egress event is sent."""
        return [u.strip() for u in self.webhook_urls.split(",") if u.strip()]

    @property
    def http_url(self) -> str:
        """livekit-server's HTTP URL, derived from ``ws_url``."""
        return self.ws_url.replace("wss://", "https://", 1).replace("ws://", "http://", 1)
