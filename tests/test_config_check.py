"""Config file validation: unknown keys named at start and by ``pyegress config check``, LiveKit egress keys
pyegress does not use reported as ignored, secrets masked in what is printed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pyegress.cli import app
from pyegress.config import ConfigError, Settings
from pyegress.config_keys import LIVEKIT_KEYS, check_keys

# A LiveKit egress service config as its README documents it (LiveKit egress pkg/config), with a value set
# for every secret so the tests can look for it in the output.
LIVEKIT_CONFIG = """\
log_level: info
api_key: APIexample
api_secret: api-secret-d3adb33f
ws_url: wss://livekit.example.com
redis:
  address: redis.example.com:6379
  username: egress
  password: redis-password-c0ffee
  db: 1
  tls:
    enabled: true
health_port: 8081
template_port: 7980
prometheus_port: 6789
debug_handler_port: 0
logging:
  level: debug
  json: true
template_base: http://localhost:7980/
enable_chrome_sandbox: false
insecure: false
cpu_cost:
  room_composite_cpu_cost: 3.0
  audio_room_composite_cpu_cost: 1.0
  sdk_audio_room_composite_cpu_cost: 0.5
  web_cpu_cost: 3.0
  track_composite_cpu_cost: 2.0
  track_cpu_cost: 1.0
session_limits:
  file_output_max_duration: 1h
  stream_output_max_duration: 90m
  segment_output_max_duration: 3h
storage:
  prefix: recordings
  generate_presigned_url: true
  s3:
    access_key: AKIAEXAMPLE
    secret: s3-secret-f00d
    session_token: s3-session-token-beef
    region: us-east-1
    bucket: my-bucket
    proxy_config:
      url: http://proxy.example.com:3128
      username: proxy-user
      password: proxy-password-cafe
    assume_role_arn: arn:aws:iam::123456789012:role/egress
    max_retries: 3
    max_retry_delay: 5s
    min_retry_delay: 500ms
backup:
  azure:
    account_name: myaccount
    account_key: azure-account-key-babe
    container_name: backup
debug:
  enable_profiling: true
  gcp:
    credentials_json: gcp-credentials-json-face
    bucket: dotfiles
latency:
  jitter_buffer_latency: 2s
  rtpmaxallowedtsdiff: 5s
"""

SECRETS = ("AKIAEXAMPLE", "api-secret-d3adb33f", "redis-password-c0ffee", "s3-secret-f00d", "s3-session-token-beef",
           "proxy-password-cafe", "azure-account-key-babe", "gcp-credentials-json-face")


@pytest.fixture
def runner(monkeypatch, tmp_path) -> CliRunner:
    """A CLI runner in an empty directory (no ``.env``), with no config from the environment."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("PYEGRESS_", "LIVEKIT_")) or name in ("EGRESS_CONFIG_FILE", "EGRESS_CONFIG_BODY"):
            monkeypatch.delenv(name)
    return CliRunner()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_a_livekit_config_is_accepted_and_its_unused_keys_reported(runner, tmp_path):
    result = runner.invoke(app, ["config", "check", str(write(tmp_path, LIVEKIT_CONFIG))])
    assert result.exit_code == 0, result.output
    assert "api_key: APIexample" in result.stdout
    assert "address: redis.example.com:6379" in result.stdout
    assert "file_output_max_duration: 3600.0" in result.stdout  # Go duration read
    ignored = result.stderr.split("ignores: ")[1].strip().split(", ")
    assert {"log_level", "health_port", "logging.json", "redis.tls", "debug", "latency",
            "cpu_cost.sdk_audio_room_composite_cpu_cost", "storage.generate_presigned_url",
            "storage.s3.assume_role_arn"} <= set(ignored)
    assert "debug.enable_profiling" not in ignored  # a block is named once
    assert "api_key" not in ignored and "storage.s3.max_retries" not in ignored  # pyegress reads those
    assert "prometheus_port" not in ignored and "prometheus_port: 6789" in result.stdout


def test_secrets_are_masked(runner, tmp_path, monkeypatch):
    monkeypatch.setenv("PYEGRESS_DATABASE_URL", "postgresql+psycopg://egress:db-password-dead@db/egress")
    monkeypatch.setenv("PYEGRESS_WEBHOOK_URLS", "https://hooks.example.com/lk?token=webhook-token-feed&x=1")
    result = runner.invoke(app, ["config", "check", str(write(tmp_path, LIVEKIT_CONFIG))])
    assert result.exit_code == 0, result.output
    for secret in (*SECRETS, "db-password-dead", "webhook-token-feed"):
        assert secret not in result.output
    assert "api_secret: '********'" in result.stdout
    assert "postgresql+psycopg://egress:********@db/egress" in result.stdout
    assert "token=********&x=1" in result.stdout


def test_a_misspelled_nested_key_is_named_with_a_suggestion(runner, tmp_path):
    config = LIVEKIT_CONFIG.replace("    access_key: AKIAEXAMPLE", "    acess_key: AKIAEXAMPLE")
    result = runner.invoke(app, ["config", "check", str(write(tmp_path, config))])
    assert result.exit_code == 2
    assert "unknown key storage.s3.acess_key (did you mean access_key?)" in result.stderr
    assert "Traceback" not in result.output and result.stdout == ""
    for secret in SECRETS:
        assert secret not in result.output


def test_unknown_keys_are_all_listed(runner, tmp_path):
    config = write(tmp_path, """\
        api_key: k
        colour: blue
        redis:
          adress: 127.0.0.1:6379
        debug:
          enable_profilng: true
        """)
    result = runner.invoke(app, ["config", "check", str(config)])
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert f"pyegress: config {config}: unknown key colour" in lines
    assert any("unknown key redis.adress (did you mean address?)" in line for line in lines)
    # a typo inside a block pyegress ignores is a typo for LiveKit too
    assert any("unknown key debug.enable_profilng (did you mean enable_profiling?)" in line for line in lines)


def test_invalid_values_and_yaml_are_reported_without_their_text(runner, tmp_path):
    result = runner.invoke(app, ["config", "check", str(write(tmp_path, "api_secret: [api-secret-d3adb33f]\n"))])
    assert result.exit_code == 2 and "api_secret: Input should be a valid string" in result.stderr
    result = runner.invoke(app, ["config", "check", str(write(tmp_path, "api_secret: api-secret-d3adb33f: x\n"))])
    assert result.exit_code == 2 and "invalid YAML" in result.stderr and "line 1" in result.stderr
    assert "api-secret-d3adb33f" not in result.output  # PyYAML's own message quotes the line
    result = runner.invoke(app, ["config", "check", str(write(tmp_path, "storage:\n  s3:\n    region: x\n"))])
    assert result.exit_code == 2 and "storage.s3.bucket: Field required" in result.stderr
    result = runner.invoke(app, ["config", "check", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2 and "missing.yaml" in result.stderr and "Traceback" not in result.output


def test_settings_refuse_unknown_keys(runner, monkeypatch):
    monkeypatch.setenv("EGRESS_CONFIG_BODY", "storage:\n  s3:\n    bucket: b\n    regoin: x\n")
    with pytest.raises(ConfigError, match=r"EGRESS_CONFIG_BODY: unknown key storage\.s3\.regoin \(did you mean "
                                          r"region\?\)"):
        Settings()
    monkeypatch.setenv("EGRESS_CONFIG_BODY", LIVEKIT_CONFIG)
    assert Settings().redis.db == 1


def test_every_livekit_block_is_known_to_the_checker():
    """A file with every LiveKit egress key has no unknown one."""
    def filled(tree):
        return {k: (filled(v) if v else "x") for k, v in tree.items()}

    assert check_keys(filled(LIVEKIT_KEYS)).unknown == []


def test_worker_with_a_misspelled_key_exits_before_connecting(tmp_path):
    """``pyegress worker`` stops at once, naming the key; the Redis address is never dialled."""
    config = write(tmp_path, "redis:\n  address: 127.0.0.1:1\nstorage:\n  s3:\n    bukcet: b\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYEGRESS_")} | {"PYEGRESS_CONFIG": str(config)}
    done = subprocess.run([sys.executable, "-m", "pyegress", "worker"], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert "unknown key storage.s3.bukcet (did you mean bucket?)" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "var").exists()  # stopped before opening its database


def test_misspelled_environment_variables_are_named_with_a_suggestion(runner, monkeypatch, tmp_path):
    """A PYEGRESS_* variable no setting reads would leave its setting at the default (a misspelled
    PYEGRESS_API_SECRET: the dev secret): serve, worker and config check refuse it by name, never its value."""
    monkeypatch.setenv("PYEGRESS_API_SECERT", "api-secret-d3adb33f")
    monkeypatch.setenv("PYEGRESS_STORAGE__S3__BUKET", "b")
    result = runner.invoke(app, ["config", "check", str(write(tmp_path, LIVEKIT_CONFIG))])
    assert result.exit_code == 2
    assert "unknown variable PYEGRESS_API_SECERT (did you mean PYEGRESS_API_SECRET?)" in result.output
    assert "unknown variable PYEGRESS_STORAGE__S3__BUKET (did you mean PYEGRESS_STORAGE__S3__BUCKET?)" in result.output
    assert "d3adb33f" not in result.output
    env = {k: v for k, v in os.environ.items()}
    done = subprocess.run([sys.executable, "-m", "pyegress", "serve", "--port", "1"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "PYEGRESS_API_SECERT" in done.stderr and "Traceback" not in done.stderr


def test_every_setting_and_block_is_a_known_environment_variable(runner, monkeypatch, tmp_path):
    for name, value in {"PYEGRESS_API_SECRET": "s", "PYEGRESS_REDIS__ADDRESS": "127.0.0.1:6379",
                        "PYEGRESS_CPU_COST": '{"max_cpu_utilization": 0.9}', "PYEGRESS_CACHE": str(tmp_path),
                        "PYEGRESS_STORAGE__S3__METADATA__OWNER": "me", "PYEGRESS_LIST_EGRESS_PAGE_SIZE": "5",
                        "PYEGRESS_SESSION_LIMITS__FILE_OUTPUT_MAX_SIZE": "1000"}.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.redis.address == "127.0.0.1:6379" and settings.cpu_cost.max_cpu_utilization == 0.9
    assert settings.list_egress_page_size == 5


def test_the_readmes_production_config_is_valid(runner, tmp_path):
    """The README's production egress.yaml passes `pyegress config check` as written."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## Production setup"):]
    block = section[section.index("```yaml\n") + 8:]
    block = block[:block.index("```")]
    result = runner.invoke(app, ["config", "check", str(write(tmp_path, block))])
    assert result.exit_code == 0, result.output
    assert "recordings-backup" in result.output and "<password>" not in result.output


def test_a_misspelled_variable_in_dot_env_is_named(runner, tmp_path):
    (tmp_path / ".env").write_text("PYEGRESS_PORT=9000\nPYEGRESS_RECORDING_DIR=/data\n")
    with pytest.raises(ConfigError, match=r"\.env: unknown variable PYEGRESS_RECORDING_DIR \(did you mean "
                                          r"PYEGRESS_RECORDINGS_DIR\?\)"):
        Settings()
    (tmp_path / ".env").write_text("PYEGRESS_PORT=9000\n")
    assert Settings().port == 9000
