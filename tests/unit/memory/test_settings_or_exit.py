"""A bad setting stops a service with one line naming it, never a traceback or the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from executor_service.settings import ExecutorSettings
from memory_service.servicekit.settings import settings_or_exit
from memory_service.settings import MemorySettings


def test_a_bad_setting_is_one_line_naming_it_and_exit_code_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EXECUTOR_PORT", "not-a-port-4f1c9a7e")
    monkeypatch.setenv("EXECUTOR_MEMORY_TOKEN", "has space")  # Refused, and must not be echoed.
    with pytest.raises(SystemExit) as stopped:
        settings_or_exit(ExecutorSettings, "EXECUTOR_")
    assert stopped.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("cannot start: EXECUTOR_PORT: ")
    assert any(line.startswith("cannot start: EXECUTOR_MEMORY_TOKEN: ") for line in lines)
    assert all(line.startswith("cannot start: ") for line in lines)
    text = "\n".join(lines)
    assert "not-a-port-4f1c9a7e" not in text
    assert "has space" not in text
    assert "Traceback" not in text


def test_good_settings_come_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXECUTOR_PORT", "50999")
    assert settings_or_exit(ExecutorSettings, "EXECUTOR_").port == 50999


def test_the_redis_password_comes_from_its_file_or_its_variable_not_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret-from-a-mounted-secret\n")  # As a Secret's file often ends.
    monkeypatch.setenv("MEMORY_REDIS_PASSWORD_FILE", str(secret))
    settings = settings_or_exit(MemorySettings, "MEMORY_")
    assert settings.redis_password is not None
    assert settings.redis_password.get_secret_value() == "s3cret-from-a-mounted-secret"
    monkeypatch.setenv("MEMORY_REDIS_PASSWORD", "another-one")
    with pytest.raises(SystemExit):
        settings_or_exit(MemorySettings, "MEMORY_")
    error = capsys.readouterr().err
    assert "set MEMORY_REDIS_PASSWORD or MEMORY_REDIS_PASSWORD_FILE, not both" in error
    assert "another-one" not in error
    assert "s3cret" not in error
