"""`attune-memory-admin`: the operator CLI (tokens, keys, reencrypt) through typer's runner."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from memory_service.admin.app import app
from memory_service.security.crypto import Keyring, parse_keys
from memory_service.security.identity import bearer_token, hash_token
from tests.support.helpers import write_tokens_file

TOKEN = "plain-token-for-the-admin-cli"  # noqa: S105 - a test token
TOKENS = {"vera": "t-vera-0123456789", "rune": "t-rune-0123456789", "ada": "t-ada-0123456789"}


def invoke(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> Result:
    return CliRunner(env={"COLUMNS": "400", **(env or {})}).invoke(app, list(args), input=stdin)


def tokens_file(tmp_path: Path, roles: dict[str, str], delegates: tuple[str, ...] = ()) -> Path:
    users = {user: (role, ["default"]) for user, role in roles.items()}
    return write_tokens_file(tmp_path / "tokens.yaml", users, TOKENS, delegates)


# --- tokens ---------------------------------------------------------------------------


def test_tokens_new_prints_a_token_and_its_hash() -> None:
    done = invoke("tokens", "new")
    assert done.exit_code == 0, done.output
    lines = done.stdout.splitlines()
    token = lines[0].removeprefix("token: ")
    assert lines[1] == f"token_sha256: {hash_token(token)}"
    assert lines[2].startswith("# Give the token to the client")
    assert bearer_token([("authorization", f"Bearer {token}")]) == token
    assert invoke("tokens", "new").stdout != done.stdout


def test_tokens_hash_reads_the_token_from_stdin_only() -> None:
    done = invoke("tokens", "hash", stdin=TOKEN + "\n")
    assert (done.exit_code, done.stdout, done.stderr) == (0, hash_token(TOKEN) + "\n", "")
    # A token on the command line is refused: it would land in shell history and ps.
    refused = invoke("tokens", "hash", TOKEN)
    assert refused.exit_code == 2
    assert refused.stdout == ""
    assert hash_token(TOKEN) not in refused.output


@pytest.mark.parametrize("stdin", ["", "\n", "two words\n", "x" * 5000])
def test_tokens_hash_refuses_an_unusable_token_in_one_line(stdin: str) -> None:
    done = invoke("tokens", "hash", stdin=stdin)
    assert done.exit_code == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("error: ")


def test_tokens_check_summarises_a_memory_file(tmp_path: Path) -> None:
    path = tokens_file(tmp_path, {"vera": "reader", "rune": "writer"}, delegates=("rune",))
    done = invoke("tokens", "check", str(path))
    assert done.exit_code == 0, done.output
    assert done.stdout == (
        f"{path}: 2 tokens for 2 users; 1 may act on behalf of users (delegate: true)\n"
    )


def test_tokens_check_for_the_executor_warns_about_delegate(tmp_path: Path) -> None:
    path = tokens_file(tmp_path, {"vera": "viewer", "ada": "admin"}, delegates=("ada",))
    done = invoke("tokens", "check", "--service", "executor", str(path))
    assert done.exit_code == 0, done.output
    assert done.stdout == f"{path}: 2 tokens for 2 users\n"
    assert done.stderr == "warning: 1 entries say delegate: true, which the executor ignores\n"
    wrong = invoke("tokens", "check", "--service", "memory", str(path))
    assert wrong.exit_code == 1
    assert "must be one of reader, writer, admin" in wrong.stderr


def test_tokens_check_lists_every_problem_of_a_bad_file(tmp_path: Path) -> None:
    entries = [
        {"token_sha256": "nope", "user_id": "a", "role": "writer", "namespaces": ["x"]},
        {"token_sha256": hash_token(TOKEN), "user_id": "b", "role": "boss", "namespaces": []},
    ]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(entries))
    done = invoke("tokens", "check", str(path))
    assert done.exit_code == 1
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert lines[0] == f"error: tokens file {path} has 3 problems:"
    assert [line.split(":")[0].strip() for line in lines[1:]] == [
        "entries[0].token_sha256",
        "entries[1].role",
        "entries[1].namespaces",
    ]
    assert "nope" not in done.stderr  # A bad hash may be a pasted token: never echoed.


def test_tokens_check_of_a_missing_file_is_one_line(tmp_path: Path) -> None:
    done = invoke("tokens", "check", str(tmp_path / "absent.yaml"))
    assert done.exit_code == 1
    assert done.stderr.splitlines() == [
        f"error: tokens file {tmp_path / 'absent.yaml'}: cannot be read: No such file or directory"
    ]


def test_tokens_check_refuses_an_unknown_service(tmp_path: Path) -> None:
    done = invoke("tokens", "check", "--service", "billing", str(tmp_path / "t.yaml"))
    assert done.exit_code == 2
    assert "billing" in done.stderr


# --- keys -----------------------------------------------------------------------------


def test_keys_generate_prints_a_fresh_key() -> None:
    done = invoke("keys", "generate")
    assert done.exit_code == 0, done.output
    key = done.stdout.strip()
    assert len(base64.b64decode(key, validate=True)) == 32
    assert invoke("keys", "generate").stdout.strip() != key


def test_keys_generate_with_an_id_prints_a_key_setting() -> None:
    done = invoke("keys", "generate", "--key-id", "k3")
    assert done.exit_code == 0, done.output
    keyring = Keyring(dict(parse_keys(done.stdout.strip())), None)
    assert (keyring.key_ids, keyring.active_key_id) == (frozenset({"k3"}), "k3")


def test_keys_generate_refuses_a_bad_id_in_one_line() -> None:
    done = invoke("keys", "generate", "--key-id", "no spaces")
    assert done.exit_code == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "error: --key-id: a key id must be 1 to 64 characters of [A-Za-z0-9._-] (got 9 characters)"
    ]


# --- reencrypt ------------------------------------------------------------------------


def key_setting(*ids: str) -> str:
    return ",".join(
        f"{key_id}:{base64.b64encode(bytes([n]) * 32).decode()}"
        for n, key_id in enumerate(ids, start=1)
    )


def test_reencrypt_an_empty_store(tmp_path: Path) -> None:
    env = {"MEMORY_DATA_DIR": str(tmp_path), "MEMORY_ENCRYPTION_KEYS": key_setting("k1")}
    done = invoke("reencrypt", env=env)
    assert done.exit_code == 0, done.output
    assert done.stdout.splitlines()[-1] == "re-encrypted 0 of 0 sealed patterns under key k1"


def test_reencrypt_without_keys_exits_2_in_one_line(tmp_path: Path) -> None:
    done = invoke("reencrypt", env={"MEMORY_DATA_DIR": str(tmp_path)})
    assert done.exit_code == 2
    assert len(done.stderr.splitlines()) == 1
    assert "MEMORY_ENCRYPTION_KEYS" in done.stderr


def test_reencrypt_with_invalid_settings_exits_2(tmp_path: Path) -> None:
    env = {"MEMORY_DATA_DIR": str(tmp_path), "MEMORY_STORE": "paper"}
    done = invoke("reencrypt", env=env)
    assert done.exit_code == 2
    assert done.stderr.startswith("error: invalid settings: store")
    assert len(done.stderr.splitlines()) == 1


def test_reencrypt_takes_no_arguments() -> None:
    assert invoke("reencrypt", "now").exit_code == 2


def test_help_names_every_command() -> None:
    done = invoke("--help")
    assert done.exit_code == 0
    for name in ("tokens", "keys", "reencrypt"):
        assert name in done.stdout
