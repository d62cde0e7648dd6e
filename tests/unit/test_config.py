from __future__ import annotations

from pathlib import Path

import pytest

from pweza.domain.errors import InvalidInput
from pweza.manager.config import load_settings


def test_defaults_are_the_documented_ports(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "absent.yaml", environ={})
    assert (settings.http_port, settings.grpc_port, settings.metrics_port) == (8080, 9090, 2112)
    assert settings.metrics_enabled and not settings.tls_enabled


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("http_port: 8181\nlog_level: debug\nlease-seconds: 12\n")
    settings = load_settings(
        path, environ={"HTTP_PORT": "9999", "METRICS_ENABLED": "false", "PWEZA_HEARTBEAT_SECONDS": "2"}
    )
    assert settings.http_port == 9999
    assert settings.log_level == "debug" and settings.lease_seconds == 12
    assert not settings.metrics_enabled and settings.heartbeat_seconds == 2


def test_the_config_path_can_come_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.yaml"
    path.write_text("grpc_port: 9191\n")
    assert load_settings(environ={"PWEZA_CONFIG": str(path)}).grpc_port == 9191


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("http_port: 70000\n", "http_port: Input should be less than or equal to 65535"),
        ("log_level: loud\n", "log_level: String should match pattern"),
        ("colour: red\n", "colour: Extra inputs are not permitted"),
        ("- a list\n", "expected a mapping"),
    ],
)
def test_bad_settings_name_the_file_and_field(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(InvalidInput) as caught:
        load_settings(path, environ={})
    assert words in caught.value.detail
    assert str(path) in caught.value.detail
