"""The executor's credentials for the memory service, and the CLI's for the executor.

Covers where the executor's token comes from (variable or mounted file), the
`authorization` metadata the memory client builds, the CLI's token check, and
the development stacks turning memory authentication off explicitly.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from executor_service.cli.client import TokenError, checked_token
from executor_service.dev.stack import auth_note, executor_process, memory_process
from executor_service.memory.client import MemoryClient, caller_authorization
from executor_service.settings import ExecutorSettings
from memory_service.servicekit.logging import request_id_var

TOKEN = "exec-token_0123456789abcdefABCDEF"  # noqa: S105 - a test's own.
OTHER = "other-token_9876543210"


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's own EXECUTOR_* or MEMORY_* variables must not change these tests.
    for name in list(os.environ):
        if name.startswith(("EXECUTOR_", "MEMORY_")):
            monkeypatch.delenv(name)


def token_of(settings: ExecutorSettings) -> str | None:
    secret = settings.memory_bearer_token
    return None if secret is None else secret.get_secret_value()


# --- where the token comes from -------------------------------------------------------


def test_no_token_is_configured_by_default() -> None:
    settings = ExecutorSettings()
    assert settings.memory_token is None
    assert settings.memory_token_file is None
    assert token_of(settings) is None


def test_the_variable_is_the_token_without_surrounding_whitespace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXECUTOR_MEMORY_TOKEN", f"  {TOKEN}\n")
    assert token_of(ExecutorSettings()) == TOKEN


@pytest.mark.parametrize("content", [TOKEN, f"{TOKEN}\n", f"\n  {TOKEN}\t\r\n\n"])
def test_the_file_is_read_at_start_with_surrounding_whitespace_stripped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str
) -> None:
    secret = tmp_path / "memory-token"
    secret.write_text(content)
    monkeypatch.setenv("EXECUTOR_MEMORY_TOKEN_FILE", str(secret))
    settings = ExecutorSettings()
    # Read once, at start: a later change to the file changes nothing.
    secret.write_text(OTHER)
    assert token_of(settings) == TOKEN


def test_both_the_variable_and_the_file_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "memory-token"
    secret.write_text(OTHER)
    monkeypatch.setenv("EXECUTOR_MEMORY_TOKEN", TOKEN)
    monkeypatch.setenv("EXECUTOR_MEMORY_TOKEN_FILE", str(secret))
    with pytest.raises(ValidationError) as caught:
        ExecutorSettings()
    message = str(caught.value)
    assert "EXECUTOR_MEMORY_TOKEN or EXECUTOR_MEMORY_TOKEN_FILE, not both" in message
    assert TOKEN not in message
    assert OTHER not in message


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "is empty"),
        (" \n\t\n", "is empty"),
        (f"{TOKEN} {OTHER}", "not a usable bearer token"),
        (f"{TOKEN}\n{OTHER}\n", "not a usable bearer token"),
        (f"Bearer {TOKEN}", "not a usable bearer token"),
    ],
)
def test_an_unusable_file_is_refused_without_echoing_it(
    tmp_path: Path, content: str, problem: str
) -> None:
    secret = tmp_path / "memory-token"
    secret.write_text(content)
    with pytest.raises(ValidationError) as caught:
        ExecutorSettings(memory_token_file=secret)
    message = str(caught.value)
    assert "EXECUTOR_MEMORY_TOKEN_FILE" in message
    assert problem in message
    assert TOKEN not in message
    assert OTHER not in message


def test_a_missing_file_is_a_configuration_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "not-mounted"
    with pytest.raises(ValidationError) as caught:
        ExecutorSettings(memory_token_file=missing)
    message = str(caught.value)
    assert f"EXECUTOR_MEMORY_TOKEN_FILE ({missing}) cannot be read" in message


def test_an_unusable_variable_is_refused_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXECUTOR_MEMORY_TOKEN", f"{TOKEN} {OTHER}")
    with pytest.raises(ValidationError) as caught:
        ExecutorSettings()
    message = str(caught.value)
    assert "EXECUTOR_MEMORY_TOKEN is not a usable bearer token" in message
    assert TOKEN not in message


def test_settings_never_show_the_token(tmp_path: Path) -> None:
    secret = tmp_path / "memory-token"
    secret.write_text(OTHER)
    for settings in (
        ExecutorSettings(memory_token=SecretStr(TOKEN)),
        ExecutorSettings(memory_token_file=secret),
    ):
        shown = f"{settings!r} {settings!s} {settings.model_dump()} {settings.model_dump_json()}"
        assert TOKEN not in shown
        assert OTHER not in shown


# --- the metadata of calls to the memory service ----------------------------------------


@pytest.fixture
async def client() -> AsyncIterator[MemoryClient]:
    """A client with the executor's token; no call is made, so no server is needed."""
    made = MemoryClient.from_settings(ExecutorSettings(memory_token=SecretStr(TOKEN)))
    try:
        yield made
    finally:
        await made.close()


def authorization_of(metadata: tuple[tuple[str, str], ...]) -> list[str]:
    return [value for key, value in metadata if key == "authorization"]


async def test_calls_carry_the_executor_token_beside_the_request_id(client: MemoryClient) -> None:
    reset = request_id_var.set("req-1")
    try:
        metadata = client.metadata()
    finally:
        request_id_var.reset(reset)
    assert authorization_of(metadata) == [f"Bearer {TOKEN}"]
    assert ("x-request-id", "req-1") in metadata


async def test_a_call_for_a_user_carries_the_executor_token_and_names_them(
    client: MemoryClient,
) -> None:
    metadata = client.metadata(on_behalf_of="carol@example.com")
    assert authorization_of(metadata) == [f"Bearer {TOKEN}"]
    assert ("attune-on-behalf-of", "carol@example.com") in metadata


async def test_without_a_token_no_header_is_sent() -> None:
    bare = MemoryClient.from_settings(ExecutorSettings())
    try:
        assert authorization_of(bare.metadata()) == []
    finally:
        await bare.close()


async def test_the_client_never_shows_its_token(client: MemoryClient) -> None:
    assert TOKEN not in repr(vars(client))


def test_a_callers_authorization_values_are_kept_as_sent() -> None:
    metadata = (
        ("x-request-id", "r"),
        ("authorization", "Bearer a"),
        ("authorization-bin", b"\x00"),
        ("authorization", "not even bearer"),
    )
    assert caller_authorization(metadata) == ("Bearer a", "not even bearer")
    assert caller_authorization((("x-request-id", "r"),)) == ()
    assert caller_authorization(None) == ()


# --- the CLI's token ------------------------------------------------------------------


def test_the_cli_token_is_stripped() -> None:
    assert checked_token(f" {TOKEN}\n") == TOKEN


@pytest.mark.parametrize("token", ["", "  ", f"{TOKEN} x", f"{TOKEN}\nx", "tok\u00e9n"])
def test_an_unusable_cli_token_is_refused_without_echoing_it(token: str) -> None:
    with pytest.raises(TokenError) as caught:
        checked_token(token)
    assert TOKEN not in str(caught.value)


# --- development stacks -----------------------------------------------------------------


def test_development_memory_processes_turn_authentication_off_explicitly(tmp_path: Path) -> None:
    memory = memory_process(tmp_path)
    assert memory.setting("AUTH_DISABLED") == "true"
    assert memory.setting("TOKENS_FILE") is None
    assert "authentication off" in auth_note(memory)


@pytest.mark.parametrize(
    "given", [{"TOKENS_FILE": "/secrets/tokens.yaml"}, {"AUTH_DISABLED": "false"}]
)
def test_a_callers_authentication_settings_are_left_alone(
    tmp_path: Path, given: dict[str, str]
) -> None:
    memory = memory_process(tmp_path, settings=given)
    for key in ("TOKENS_FILE", "AUTH_DISABLED"):
        assert memory.setting(key) == given.get(key)
    assert "authentication on" in auth_note(memory)


def test_a_tokens_file_in_the_environment_keeps_authentication_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMORY_TOKENS_FILE", "/secrets/tokens.yaml")
    memory = memory_process(tmp_path)
    assert memory.setting("AUTH_DISABLED") is None
    assert memory.setting("TOKENS_FILE") == "/secrets/tokens.yaml"


def test_auth_disabled_false_leaves_authentication_to_the_settings(tmp_path: Path) -> None:
    assert memory_process(tmp_path, auth_disabled=False).setting("AUTH_DISABLED") is None


def test_a_replacement_environment_is_the_one_asked_about_authentication_and_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # This process's variables do not reach a process given its own environment...
    monkeypatch.setenv("MEMORY_TOKENS_FILE", "/secrets/tokens.yaml")
    monkeypatch.setenv("MEMORY_ENCRYPTION_KEY_FILE", "/secrets/key")
    memory = memory_process(tmp_path / "a", environment={"PATH": "/usr/bin"})
    assert memory.setting("TOKENS_FILE") is None
    assert memory.setting("AUTH_DISABLED") == "true"
    assert memory.setting("ENCRYPTION_KEY_FILE") == str(tmp_path / "a" / "dev-encryption.key")
    # ...and what that environment sets is kept.
    monkeypatch.delenv("MEMORY_TOKENS_FILE")
    given = {"MEMORY_TOKENS_FILE": "/run/tokens.yaml", "EXECUTOR_TOKENS_FILE": "/run/e.yaml"}
    memory = memory_process(tmp_path / "b", environment=given)
    assert memory.setting("AUTH_DISABLED") is None
    assert memory.setting("TOKENS_FILE") == "/run/tokens.yaml"
    executor = executor_process(tmp_path / "b", "127.0.0.1:1", environment=given)
    assert executor.setting("AUTH_DISABLED") is None
