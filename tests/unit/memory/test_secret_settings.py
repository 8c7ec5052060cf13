"""The one resolver of "a secret, or a file holding it" settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from memory_service.servicekit.secret_settings import (
    SecretSettingError,
    read_secret_file,
    resolve_secret,
)

SECRET = "s3cret-value-never-echoed"  # noqa: S105 (a test value)
SPACE = st.text(alphabet=" \t\r\n", max_size=5)


def test_neither_set_is_none() -> None:
    assert resolve_secret(None, None, "X_TOKEN") is None


def test_value_alone_is_returned_as_given() -> None:
    assert resolve_secret(SecretStr(SECRET), None, "X_TOKEN") == SecretStr(SECRET)


def test_both_set_is_an_error_naming_both_settings(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(SECRET)
    with pytest.raises(SecretSettingError) as caught:
        resolve_secret(SecretStr(SECRET), key_file, "X_TOKEN", "token the service uses")
    message = str(caught.value)
    assert message.startswith("set X_TOKEN or X_TOKEN_FILE, not both")
    assert message.endswith("which token the service uses")
    assert SECRET not in message


@given(before=SPACE, after=SPACE)
def test_file_text_is_stripped_of_surrounding_whitespace(
    tmp_path_factory: pytest.TempPathFactory, before: str, after: str
) -> None:
    key_file = tmp_path_factory.mktemp("secret") / "key"
    key_file.write_bytes(f"{before}{SECRET}{after}".encode())
    assert resolve_secret(None, key_file, "X_TOKEN") == SecretStr(SECRET)


@given(blank=SPACE)
def test_blank_file_is_empty_unless_allowed(
    tmp_path_factory: pytest.TempPathFactory, blank: str
) -> None:
    key_file = tmp_path_factory.mktemp("secret") / "key"
    key_file.write_bytes(blank.encode())
    with pytest.raises(SecretSettingError, match=r"^X_TOKEN_FILE \(.*\) is empty$"):
        resolve_secret(None, key_file, "X_TOKEN")
    assert read_secret_file(key_file, "X_TOKEN_FILE", allow_empty=True) == SecretStr("")


def test_unreadable_file_names_the_setting_and_the_file(tmp_path: Path) -> None:
    absent = tmp_path / "absent"
    with pytest.raises(SecretSettingError) as caught:
        resolve_secret(None, absent, "X_TOKEN")
    assert str(caught.value) == f"X_TOKEN_FILE ({absent}) cannot be read: No such file or directory"
    with pytest.raises(SecretSettingError, match="cannot be read"):
        read_secret_file(tmp_path, "X_TOKEN_FILE")  # A directory.


def test_non_utf8_file_is_refused_without_quoting_its_bytes(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_bytes(SECRET.encode() + b"\xff\xfe")
    with pytest.raises(SecretSettingError) as caught:
        read_secret_file(key_file, "X_TOKEN_FILE")
    assert str(caught.value) == f"X_TOKEN_FILE ({key_file}) is not UTF-8 text"
    assert caught.value.__cause__ is None
