"""The keys a config file may hold, and the checks ``pyegress serve``/``worker`` and ``pyegress config check``
make on them: which keys pyegress reads, which LiveKit's Go egress reads but pyegress ignores, which neither
knows; and masking of secrets for printing.

A key neither pyegress nor LiveKit egress knows is a mistake (a misspelling, or a key at the wrong depth),
reported by its path with the closest known key. A key only LiveKit reads is accepted, so a deployment's
file works unchanged, and reported as ignored.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel

Tree = dict[str, "Tree | None"]
"""Known keys of a block: a key maps to its block's keys, or to None for a value (or a mapping whose keys are
the user's own, such as ``metadata``), which is not looked into."""


def _leaves(*names: str) -> Tree:
    return dict.fromkeys(names)


_LK_PROXY = _leaves("url", "username", "password")
_LK_STORAGE: Tree = {
    "prefix": None, "generate_presigned_url": None,
    # livekit/storage config.go (the version LiveKit egress pins); aws_log_level and alioss.region are in
    # LiveKit egress's README though its code no longer reads them
    "s3": _leaves("access_key", "secret", "session_token", "assume_role_arn", "assume_role_external_id", "region",
                  "endpoint", "bucket", "force_path_style", "max_retries", "max_retry_delay", "min_retry_delay",
                  "metadata", "tagging", "content_disposition", "aws_log_level") | {"proxy_config": _LK_PROXY},
    "azure": _leaves("account_name", "account_key", "container_name"),
    "gcp": _leaves("credentials_json", "bucket") | {"proxy_config": _LK_PROXY},
    "alioss": _leaves("access_key", "secret", "endpoint", "bucket", "region"),
}

LIVEKIT_KEYS: Tree = {
    # LiveKit egress pkg/config base.go (BaseConfig)
    "redis": _leaves(  # livekit/protocol redis.RedisConfig, its tls: xtls.Config
        "address", "username", "password", "db", "use_tls", "sentinel_master_name", "sentinel_username",
        "sentinel_password", "sentinel_addresses", "cluster_addresses", "dial_timeout", "read_timeout",
        "write_timeout", "max_redirects", "pool_timeout", "pool_size")
    | {"tls": _leaves("enabled", "insecure", "server_name", "ca_cert_file", "client_cert_file", "client_key_file")},
    **_leaves("api_key", "api_secret", "ws_url", "template_base", "cluster_id", "enable_chrome_sandbox",
              "max_upload_queue", "disallow_local_storage", "io_create_timeout", "io_update_timeout",
              "io_selection_timeout", "io_workers", "s3_assume_role_key", "s3_assume_role_secret",
              "s3_assume_role_arn", "s3_assume_role_external_id", "insecure", "chrome_flags", "latency_overrides",
              "video_encoder_threads", "enable_one_shot_sender_report_sync", "enable_sync_engine"),
    "logging": _leaves("json", "level", "sample", "component_levels", "sample_initial", "sample_interval",
                       "item_sample_seconds", "item_sample_initial", "item_sample_interval"),  # livekit/protocol
    "session_limits": _leaves("file_output_max_duration", "file_output_max_size", "stream_output_max_duration",
                              "segment_output_max_duration", "image_output_max_duration"),
    "storage": _LK_STORAGE,
    "backup": _LK_STORAGE,
    "debug": _leaves("enable_profiling", "enable_track_logging", "enable_stream_logging",
                     "enable_chrome_logging") | _LK_STORAGE,
    # three fields are tagged `ymal:`, so Go's YAML reads them by their lowercased names; both spellings pass
    "latency": _leaves("jitter_buffer_latency", "audio_mixer_latency", "pipeline_latency", "old_packet_threshold",
                       "rtpmaxallowedtsdiff", "rtpmaxdriftadjustment", "rtpdriftadjustmentwindowpercent",
                       "rtp_max_allowed_ts_diff", "rtp_max_drift_adjustment", "rtp_drift_adjustment_window_percent"),
    "audio_tempo_controller": _leaves("enabled", "adjustment_rate"),
    "test_overrides": _leaves("failure_injection_room", "disconnect_injection_room"),
    # LiveKit egress pkg/config service.go (ServiceConfig)
    **_leaves("health_port", "template_port", "prometheus_port", "debug_handler_port", "pulse_sink_reap_grace_sec"),
    "cpu_cost": _leaves("max_cpu_utilization", "max_memory", "memory_cost", "room_composite_cpu_cost",
                        "audio_room_composite_cpu_cost", "sdk_audio_room_composite_cpu_cost",
                        "sdk_audio_room_composite_memory_cost", "web_cpu_cost", "audio_web_cpu_cost",
                        "participant_cpu_cost", "track_composite_cpu_cost", "track_cpu_cost", "max_pulse_clients",
                        "memory_source", "memory_kill_grace_sec", "cpu_kill_grace_sec"),
    # in LiveKit egress's README samples, no longer read by its code
    **_leaves("log_level", "backup_storage"),
}
"""Every key LiveKit egress's ``config.yaml`` has (LiveKit egress pkg/config ``ServiceConfig``, with the
livekit/protocol and livekit/storage blocks it embeds). Go's YAML decoder ignores keys it does not know,
so a LiveKit file with a typo starts; pyegress reports the typo instead."""


def _model_keys(model: type[BaseModel], *drop: str) -> Tree:
    return _leaves(*(name for name in model.model_fields if name not in drop))


def pyegress_keys() -> Tree:
    """The keys pyegress reads from a config file: :class:`~pyegress.config.Settings`' fields (its nested
    models' fields inside), and in ``storage:`` / ``backup:`` what ``storage.from_config`` passes on."""
    from .config import Settings
    from .storage import AzureStorage, GCSStorage, S3Storage, SFTPStorage

    proxy = {"proxy_config": _LK_PROXY}
    not_keys = ("kind", "prefix", "proxy")  # set by from_config, or built from proxy_config
    storage: Tree = {
        "prefix": None,
        # the retry keys tune every upload (Settings._s3_retries)
        "s3": _model_keys(S3Storage, *not_keys) | _leaves("max_retries", "max_retry_delay", "min_retry_delay")
        | proxy,
        "azure": _model_keys(AzureStorage, *not_keys) | proxy,
        "gcp": _model_keys(GCSStorage, *not_keys) | proxy,
        "alioss": _leaves("access_key", "secret", "endpoint", "bucket", "region"),
        "sftp": _model_keys(SFTPStorage, *not_keys),
    }
    keys: Tree = {}
    for name, info in Settings.model_fields.items():
        nested = isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)
        keys[name] = _model_keys(info.annotation) if nested else None
    return keys | {"storage": storage, "backup": storage}


ENV_PREFIX = "PYEGRESS_"
#: Variables pyegress reads besides the settings: where the config file is, where builds are cached
#: (media/source/packets/binary.py, devtools/livekit_server.py), which Chromium runs web egress
EXTRA_ENV = frozenset({"PYEGRESS_CONFIG", "PYEGRESS_CACHE", "PYEGRESS_CHROMIUM"})


def check_env(environ: dict[str, str]) -> list[str]:
    """One problem per ``PYEGRESS_*`` variable in ``environ`` that no setting reads, with the closest known name:
    ``unknown variable PYEGRESS_API_SECERT (did you mean PYEGRESS_API_SECRET?)``. A setting is
    ``PYEGRESS_<KEY>``, a nested one ``PYEGRESS_<BLOCK>__<KEY>`` (pydantic-settings' ``env_nested_delimiter``),
    the keys as :func:`pyegress_keys` has them; below a free-form mapping (``storage.s3.metadata``) any name goes."""
    names = [name for name in environ if name.startswith(ENV_PREFIX) and name not in EXTRA_ENV]
    if not names:
        return []
    tree = pyegress_keys()
    known = sorted(EXTRA_ENV | set(_env_names(tree, ENV_PREFIX)))
    problems = []
    for name in names:
        if not _env_known(name[len(ENV_PREFIX):].lower().split("__"), tree):
            close = difflib.get_close_matches(name, known, n=1)
            problems.append(f"unknown variable {name}" + (f" (did you mean {close[0]}?)" if close else ""))
    return problems


def _env_known(path: list[str], tree: Tree | None) -> bool:
    """Whether ``path`` names a key of ``tree``: a value, a block (given whole as JSON), or a key inside a
    mapping of the user's own."""
    if tree is None or not path:
        return True
    head, *rest = path
    return head in tree and _env_known(rest, tree[head])


def _env_names(tree: Tree, prefix: str):
    for key, sub in tree.items():
        name = f"{prefix}{key.upper()}"
        yield name
        if sub is not None:
            yield from _env_names(sub, f"{name}__")


@dataclass
class KeyReport:
    """What :func:`check_keys` found: ``unknown`` keys as ``(path, suggestion)`` (suggestion "" when no known
    key is close), and ``ignored`` paths: LiveKit egress keys pyegress does not read (a block once, not its keys)."""

    unknown: list[tuple[str, str]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """One line per unknown key: ``unknown key storage.s3.acess_key (did you mean access_key?)``."""
        return [f"unknown key {path}" + (f" (did you mean {hint}?)" if hint else "") for path, hint in self.unknown]


def check_keys(data: dict[Any, Any]) -> KeyReport:
    """Sort the keys of a parsed config file into known, LiveKit-only (ignored) and unknown."""
    report = KeyReport()
    if not data:  # spares pyegress_keys' imports when there is no file
        return report
    _walk(data, pyegress_keys(), LIVEKIT_KEYS, "", report, report_ignored=True)
    return report


def _walk(data: dict[Any, Any], ours: Tree, theirs: Tree, prefix: str, report: KeyReport,
          report_ignored: bool) -> None:
    for raw_key, value in data.items():
        key, path = str(raw_key), f"{prefix}{raw_key}"
        if key not in ours and key not in theirs:
            close = difflib.get_close_matches(key, [*ours, *theirs], n=1)
            report.unknown.append((path, close[0] if close else ""))
            continue
        if key not in ours and report_ignored:
            report.ignored.append(path)
        # whoever reads the key says what is inside; keys under an ignored block are still checked, as a
        # typo there is a typo for LiveKit too
        mine, livekits = (ours[key], theirs.get(key) or {}) if key in ours else ({}, theirs[key])
        if mine is not None and livekits is not None and isinstance(value, dict):
            _walk(value, mine, livekits, f"{path}.", report, report_ignored and key in ours)


_SECRET_NAME = re.compile(r"secret|password|passphrase|token|private_key|account_key|credentials|signature|"
                          r"(^|_)sig$|(^|_)key$", re.IGNORECASE)
"""Names of keys (and URL query parameters) whose values are secrets: ``api_secret``, ``secret``,
``session_token``, ``password``, ``account_key``, ``credentials_json``, ``private_key``, ``passphrase``,
and ``access_key``, which pyegress keeps out of logs with the secret it pairs with (docs/security.md)."""

_NOT_SECRET = frozenset({"api_key", "host_key"})  # an identifier in every token; a public key
MASK = "********"


def _is_secret(name: str) -> bool:
    return name not in _NOT_SECRET and bool(_SECRET_NAME.search(name))


def mask_secrets(value: Any, name: str = "") -> Any:
    """``value`` (settings as plain data) with every secret replaced by :data:`MASK`: values of secret-named
    keys, and the password and secret-named query parameters of URLs (``database_url``, ``webhook_urls``,
    a proxy's ``url``). An empty secret stays empty, so an unset one shows as unset."""
    if isinstance(value, dict):
        return {k: mask_secrets(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v, name) for v in value]
    if value in ("", None):
        return value
    if _is_secret(name):
        return MASK
    if isinstance(value, str) and "://" in value:
        return ",".join(_mask_url(u) for u in value.split(","))
    return value


def _mask_url(url: str) -> str:
    try:
        parts = urlsplit(url.strip())
        password = parts.password
    except ValueError:  # not a URL after all
        return url
    query = parse_qsl(parts.query, keep_blank_values=True)
    if not password and not any(_is_secret(k) for k, _ in query):
        return url  # unchanged: rebuilding would rewrite some (sqlite:///x loses its empty host)
    netloc = parts.netloc.replace(f":{password}@", f":{MASK}@", 1) if password else parts.netloc
    masked = urlencode([(k, MASK if _is_secret(k) else v) for k, v in query], safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=masked))
