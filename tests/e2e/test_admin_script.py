"""The installed `attune-memory-admin` console script, run as an operator would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from memory_service.security.crypto import Keyring, parse_keys
from memory_service.security.identity import hash_token
from tests.support.helpers import write_tokens_file

pytestmark = pytest.mark.e2e

# `make venv` installs the project editable, console scripts beside the interpreter.
SCRIPT = Path(sys.executable).parent / "attune-memory-admin"


def admin(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args],
        input=stdin,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_console_script_is_installed() -> None:
    assert SCRIPT.is_file(), "run `make venv`: pyproject.toml declares attune-memory-admin"
    done = admin("--help")
    assert done.returncode == 0, done.stderr
    assert "tokens" in done.stdout
    assert "reencrypt" in done.stdout


def test_an_operator_mints_hashes_and_checks_a_token(tmp_path: Path) -> None:
    minted = admin("tokens", "new")
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.splitlines()[0].removeprefix("token: ")
    hashed = admin("tokens", "hash", stdin=token + "\n")
    assert (hashed.returncode, hashed.stdout) == (0, hash_token(token) + "\n")
    assert f"token_sha256: {hashed.stdout.strip()}" in minted.stdout

    path = write_tokens_file(tmp_path / "t.yaml", {"ops": ("admin", ["*"])}, {"ops": token})
    checked = admin("tokens", "check", str(path))
    assert (checked.returncode, checked.stdout.strip()) == (
        0,
        f"{path}: 1 tokens for 1 users; 0 may act on behalf of users (delegate: true)",
    )
    path.write_text("- token: oops\n")
    refused = admin("tokens", "check", str(path))
    assert refused.returncode == 1
    assert "entries[0].token: a plain token is never stored" in refused.stderr


def test_an_operator_makes_a_key_and_reencrypts_with_it(tmp_path: Path) -> None:
    made = admin("keys", "generate", "--key-id", "k1")
    assert made.returncode == 0, made.stderr
    setting = made.stdout.strip()
    assert Keyring(dict(parse_keys(setting)), None).key_ids == {"k1"}
    env = {"MEMORY_DATA_DIR": str(tmp_path / "data"), "MEMORY_ENCRYPTION_KEYS": setting}
    done = admin("reencrypt", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "re-encrypted 0 of 0 sealed patterns under key k1"
    missing = admin("reencrypt", env={"MEMORY_DATA_DIR": str(tmp_path / "data")})
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: ")
