"""Identity: hashed tokens files, bearer authentication, namespace authorization."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from memory_service.security.identity import (
    REQUIRED_ROLE,
    Action,
    NoAuthentication,
    Principal,
    Role,
    TokenAuthenticator,
    TokenEntry,
    TokenFileError,
    authorize,
    authorize_all_namespaces,
    bearer_token,
    hash_token,
    load_tokens_file,
    main,
)
from memory_service.servicekit.errors import ServiceError

# Made-up tokens for these tests only.
ALICE_TOKEN = "alice-Secret-Token-0123456789abcdefXYZ"  # noqa: S105
BOB_TOKEN = "bob.Secret~Token_9876543210+/fedcba=="  # noqa: S105
ROOT_TOKEN = "root-Secret-Token-zzzzzzzzzzzzzzzzzzzz"  # noqa: S105
ALL_TOKENS = (ALICE_TOKEN, BOB_TOKEN, ROOT_TOKEN)

ENTRIES: list[dict[str, Any]] = [
    {
        "token_sha256": hash_token(ALICE_TOKEN),
        "user_id": "alice@example.com",
        "role": "writer",
        "namespaces": ["team-a", "team-b"],
    },
    {
        "token_sha256": hash_token(BOB_TOKEN),
        "user_id": "svc:bob",
        "role": "reader",
        "namespaces": ["team-a"],
    },
    {
        "token_sha256": hash_token(ROOT_TOKEN),
        "user_id": "root",
        "role": "admin",
        "namespaces": ["*"],
    },
]


def write_tokens(tmp_path: Path, data: Any, name: str = "tokens.yaml") -> Path:
    path = tmp_path / name
    if isinstance(data, str):
        path.write_text(data)
    elif name.endswith(".json"):
        path.write_text(json.dumps(data))
    else:
        path.write_text(yaml.safe_dump(data))
    return path


def file_error(tmp_path: Path, data: Any, name: str = "tokens.yaml") -> TokenFileError:
    path = write_tokens(tmp_path, data, name)
    with pytest.raises(TokenFileError) as caught:
        load_tokens_file(path)
    assert str(path) in str(caught.value)
    for token in ALL_TOKENS:
        assert token not in str(caught.value)
    return caught.value


def entry(**changes: Any) -> dict[str, Any]:
    return {**ENTRIES[0], **changes}


@pytest.fixture
def authenticator(tmp_path: Path) -> TokenAuthenticator:
    return TokenAuthenticator.from_file(write_tokens(tmp_path, ENTRIES))


def bearer(token: str) -> list[tuple[str, str | bytes]]:
    return [("authorization", f"Bearer {token}")]


def unauthenticated(auth: TokenAuthenticator, metadata: list[tuple[str, str | bytes]]) -> str:
    with pytest.raises(ServiceError) as caught:
        auth.authenticate(metadata)
    assert caught.value.code is grpc.StatusCode.UNAUTHENTICATED
    for token in ALL_TOKENS:
        assert token not in caught.value.message
        assert hash_token(token) not in caught.value.message
    return caught.value.message


# --- tokens files ------------------------------------------------------------------


def test_hash_token_is_sha256_hex() -> None:
    assert hash_token("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@pytest.mark.parametrize("name", ["tokens.yaml", "tokens.yml", "tokens.json", "tokens"])
def test_loads_yaml_and_json(tmp_path: Path, name: str) -> None:
    entries = load_tokens_file(write_tokens(tmp_path, ENTRIES, name))
    assert [e.user_id for e in entries] == ["alice@example.com", "svc:bob", "root"]
    assert entries[0].role is Role.WRITER
    assert entries[0].namespaces == frozenset({"team-a", "team-b"})
    assert entries[2].namespaces == frozenset({"*"})


def test_file_holds_hashes_never_tokens(tmp_path: Path) -> None:
    path = write_tokens(tmp_path, ENTRIES)
    text = path.read_text()
    for token in ALL_TOKENS:
        assert token not in text
        assert hash_token(token) in text


def test_role_names_are_case_insensitive_and_hashes_lowercased(tmp_path: Path) -> None:
    data = [entry(role="Admin", token_sha256=hash_token(ALICE_TOKEN).upper())]
    [loaded] = load_tokens_file(write_tokens(tmp_path, data))
    assert loaded.role is Role.ADMIN
    assert loaded.token_sha256 == hash_token(ALICE_TOKEN)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("", "is empty"),
        ("[]", "no entries"),
        ("{token_sha256: x}", "must be a list"),
        ("- [unclosed\n", "not valid YAML at line"),
        (["just a string"], "entries[0]: must be a mapping"),
    ],
)
def test_file_shape_errors(tmp_path: Path, data: Any, expected: str) -> None:
    assert expected in str(file_error(tmp_path, data))


def test_invalid_json_reports_position(tmp_path: Path) -> None:
    error = file_error(tmp_path, '[{"user_id": }]', "tokens.json")
    assert "not valid JSON at line 1, column 14" in str(error)


def test_missing_file_is_a_token_file_error(tmp_path: Path) -> None:
    with pytest.raises(TokenFileError, match="cannot be read"):
        load_tokens_file(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"role": "superuser"}, "entries[1].role: must be one of reader, writer, admin"),
        ({"role": 3}, "entries[1].role: must be one of reader, writer, admin"),
        ({"user_id": ""}, "entries[1].user_id: must be a quoted string"),
        ({"user_id": 12345}, "entries[1].user_id: must be a quoted string"),
        ({"user_id": "anonymous"}, "entries[1].user_id: 'anonymous' is reserved"),
        ({"namespaces": []}, "entries[1].namespaces: must grant at least one"),
        ({"namespaces": "team-a"}, "entries[1].namespaces: must be a list"),
        ({"namespaces": ["team-a", ""]}, "namespaces[1] is neither '*' nor a namespace"),
        ({"namespaces": ["Team A"]}, "namespaces[0] is neither '*' nor a namespace"),
        ({"token_sha256": "abc"}, "entries[1].token_sha256: must be the SHA-256"),
    ],
)
def test_entry_errors_name_the_entry_and_field(
    tmp_path: Path, changes: dict[str, Any], expected: str
) -> None:
    data = [ENTRIES[1], entry(**changes)]
    error = file_error(tmp_path, data)
    assert expected in str(error)
    assert error.problems == [str(error).split(": ", 1)[1]]


def test_missing_fields_are_each_reported(tmp_path: Path) -> None:
    error = file_error(tmp_path, [{"user_id": "carol"}])
    assert error.problems == [
        "entries[0].token_sha256: required",
        "entries[0].role: required",
        "entries[0].namespaces: required",
    ]


def test_every_bad_entry_is_reported_at_once(tmp_path: Path) -> None:
    data = [entry(role="boss"), ENTRIES[1], entry(token_sha256="zz", user_id="x y")]  # noqa: S106
    error = file_error(tmp_path, data)
    assert len(error.problems) == 3
    assert str(error).startswith(f"tokens file {tmp_path / 'tokens.yaml'} has 3 problems:")
    assert [p.split(".")[0] for p in error.problems] == ["entries[0]", "entries[2]", "entries[2]"]


def test_duplicate_token_hashes_are_an_error(tmp_path: Path) -> None:
    data = [*ENTRIES, entry(user_id="mallory")]
    error = file_error(tmp_path, data)
    assert error.problems == ["entries[3].token_sha256: the same token as entries[0]"]
    assert hash_token(ALICE_TOKEN) not in str(error)


def test_duplicates_are_refused_by_the_authenticator_too() -> None:
    alice = TokenEntry.model_validate(ENTRIES[0])
    with pytest.raises(ValueError, match="same token_sha256"):
        TokenAuthenticator([alice, alice])


@pytest.mark.parametrize("field", ["token_sha256", "user_id", "role"])
def test_a_plain_token_pasted_anywhere_is_never_echoed(tmp_path: Path, field: str) -> None:
    # BOB_TOKEN holds '~', '/' and '=', so it is not a valid user id either.
    error = file_error(tmp_path, [entry(**{field: BOB_TOKEN})])
    assert f"entries[0].{field}" in str(error)


def test_a_plain_token_field_gets_a_hint_without_the_token(tmp_path: Path) -> None:
    error = file_error(tmp_path, [{**ENTRIES[0], "token": ALICE_TOKEN}])
    assert error.problems == ["entries[0].token: a plain token is never stored; use token_sha256"]


def test_unknown_keys_are_not_echoed(tmp_path: Path) -> None:
    # An operator who keyed entries by token: the key itself is the secret.
    error = file_error(tmp_path, [{**ENTRIES[0], ALICE_TOKEN: "alice"}])
    assert "entries[0]: an unknown field" in str(error)


def test_a_namespace_holding_a_token_is_not_echoed(tmp_path: Path) -> None:
    file_error(tmp_path, [entry(namespaces=["team-a", ALICE_TOKEN])])


def test_yaml_errors_do_not_quote_the_file(tmp_path: Path) -> None:
    text = f"- token_sha256: {ROOT_TOKEN}\n  user_id: [\n  *{ALICE_TOKEN}\n"
    assert "not valid YAML" in str(file_error(tmp_path, text))


# --- bearer tokens -------------------------------------------------------------------


def test_known_tokens_authenticate(authenticator: TokenAuthenticator) -> None:
    alice = authenticator.authenticate(bearer(ALICE_TOKEN))
    assert alice == Principal("alice@example.com", Role.WRITER, frozenset({"team-a", "team-b"}))
    assert authenticator.authenticate(bearer(BOB_TOKEN)).user_id == "svc:bob"
    assert authenticator.authenticate(bearer(ROOT_TOKEN)).all_namespaces
    assert len(authenticator) == 3


@pytest.mark.parametrize(
    "metadata",
    [
        [("authorization", f"bearer {ALICE_TOKEN}")],
        [("authorization", f"BEARER   {ALICE_TOKEN}  ")],
        [("Authorization", f"Bearer {ALICE_TOKEN}")],
        [("authorization", f"Bearer {ALICE_TOKEN}".encode())],
        [("x-request-id", "r1"), ("authorization", f"Bearer {ALICE_TOKEN}"), ("a-bin", b"\xff")],
    ],
)
def test_bearer_header_variants(
    authenticator: TokenAuthenticator, metadata: list[tuple[str, str | bytes]]
) -> None:
    assert authenticator.authenticate(metadata).user_id == "alice@example.com"


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ([], "missing credentials"),
        ([("x-api-key", ALICE_TOKEN)], "missing credentials"),
        ([("authorization", "")], "must be 'Bearer <token>'"),
        ([("authorization", "Bearer")], "the Bearer token is empty"),
        ([("authorization", "Bearer    ")], "the Bearer token is empty"),
        ([("authorization", ALICE_TOKEN)], "must be 'Bearer <token>'"),
        ([("authorization", f"Basic {ALICE_TOKEN}")], "must be 'Bearer <token>'"),
        ([("authorization", f"Bearer{ALICE_TOKEN}")], "must be 'Bearer <token>'"),
        ([("authorization", f"Bearer {ALICE_TOKEN} extra")], "malformed"),
        ([("authorization", f"Bearer {ALICE_TOKEN}\u00e9")], "malformed"),
        ([("authorization", f"Bearer {ALICE_TOKEN}=x")], "malformed"),
        ([("authorization", "Bearer " + "a" * 5000)], "malformed"),
        ([("authorization", b"Bearer \xff\xfe")], "not ASCII"),
        (bearer(ALICE_TOKEN) + bearer(BOB_TOKEN), "more than one authorization header"),
        (bearer(ALICE_TOKEN + "x"), "not recognised"),
        (bearer(hash_token(ALICE_TOKEN)), "not recognised"),
    ],
)
def test_bad_credentials_are_unauthenticated_without_echo(
    authenticator: TokenAuthenticator, metadata: list[tuple[str, str | bytes]], expected: str
) -> None:
    assert expected in unauthenticated(authenticator, metadata)


def test_bearer_token_extracts_the_token() -> None:
    assert bearer_token(bearer(BOB_TOKEN)) == BOB_TOKEN


def test_no_authentication_is_anonymous_admin_and_loud(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        auth = NoAuthentication()
    assert "AUTHENTICATION IS OFF" in caplog.text
    principal = auth.authenticate([])
    assert principal is Principal.ANONYMOUS
    assert principal.user_id == "anonymous"
    assert principal.role is Role.ADMIN
    assert principal.all_namespaces
    for action in Action:
        authorize(principal, "anything", action)


# --- authorization -------------------------------------------------------------------


def denied(principal: Principal, namespace: str, action: Action) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        authorize(principal, namespace, action)
    assert caught.value.code is grpc.StatusCode.PERMISSION_DENIED
    return caught.value


WRITER = Principal("alice", Role.WRITER, frozenset({"team-a", "team-b"}))
READER = Principal("bob", Role.READER, frozenset({"team-a"}))
ADMIN_ALL = Principal("root", Role.ADMIN, frozenset({"*"}))
READER_ALL = Principal("analytics", Role.READER, frozenset({"*"}))


def test_role_ordering() -> None:
    assert Role.READER < Role.WRITER < Role.ADMIN
    assert Role.parse(" Writer ") is Role.WRITER
    with pytest.raises(ValueError, match="reader, writer, admin"):
        Role.parse("owner")
    assert REQUIRED_ROLE == {
        Action.READ: Role.READER,
        Action.WRITE: Role.WRITER,
        Action.DELETE: Role.WRITER,
        Action.ADMIN: Role.ADMIN,
    }


@pytest.mark.parametrize(
    ("principal", "allowed"),
    [
        (READER, {Action.READ}),
        (WRITER, {Action.READ, Action.WRITE, Action.DELETE}),
        (ADMIN_ALL, set(Action)),
    ],
)
def test_each_role_allows_exactly_its_actions(principal: Principal, allowed: set[Action]) -> None:
    for action in Action:
        if action in allowed:
            authorize(principal, "team-a", action)
            assert principal.may("team-a", action)
        else:
            error = denied(principal, "team-a", action)
            assert "is below the" in error.message
            assert not principal.may("team-a", action)


def test_denial_names_user_namespace_and_action() -> None:
    error = denied(WRITER, "team-c", Action.WRITE)
    assert (
        error.message == "user 'alice' may not write in namespace 'team-c': namespace not granted"
    )
    [info] = error.details
    assert info.reason == "NAMESPACE_NOT_GRANTED"  # type: ignore[attr-defined]
    assert dict(info.metadata) == {  # type: ignore[attr-defined]
        "user_id": "alice",
        "namespace": "team-c",
        "action": "write",
    }
    error = denied(READER, "team-a", Action.DELETE)
    assert error.message == (
        "user 'bob' may not delete in namespace 'team-a': "
        "role reader is below the writer role it needs"
    )


def test_denial_clips_long_namespaces() -> None:
    error = denied(READER, "x" * 10_000, Action.READ)
    assert len(error.message) < 300


def test_star_grants_every_namespace() -> None:
    for namespace in ("team-a", "zzz", "a.b_c-d"):
        authorize(ADMIN_ALL, namespace, Action.ADMIN)
        authorize(READER_ALL, namespace, Action.READ)
        denied(READER_ALL, namespace, Action.WRITE)


@pytest.mark.parametrize("principal", [READER, WRITER, ADMIN_ALL, READER_ALL, Principal.ANONYMOUS])
def test_empty_namespace_is_never_all(principal: Principal) -> None:
    assert not principal.grants("")
    error = denied(principal, "", Action.READ)
    assert "an empty namespace does not mean all namespaces" in error.message


def test_acting_on_all_namespaces_needs_the_star_grant() -> None:
    authorize_all_namespaces(ADMIN_ALL, Action.ADMIN)
    authorize_all_namespaces(READER_ALL, Action.READ)
    for principal, action, why in [
        (Principal("ops", Role.ADMIN, frozenset({"team-a"})), Action.ADMIN, "'*' grant"),
        (READER_ALL, Action.ADMIN, "below the admin role"),
    ]:
        with pytest.raises(ServiceError) as caught:
            authorize_all_namespaces(principal, action)
        assert caught.value.code is grpc.StatusCode.PERMISSION_DENIED
        assert why in caught.value.message


def test_unauthenticated_and_permission_denied_are_distinct(
    authenticator: TokenAuthenticator,
) -> None:
    unauthenticated(authenticator, bearer("nobody-knows-this-token"))
    bob = authenticator.authenticate(bearer(BOB_TOKEN))
    authorize(bob, "team-a", Action.READ)
    denied(bob, "team-b", Action.READ)


namespaces = st.from_regex(r"[a-z0-9._-]{1,64}", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(
    granted=st.frozensets(namespaces, max_size=5),
    asked=namespaces,
    role=st.sampled_from(Role),
    action=st.sampled_from(Action),
)
def test_namespaces_not_granted_are_always_denied(
    granted: frozenset[str], asked: str, role: Role, action: Action
) -> None:
    principal = Principal("user", role, granted)
    if asked in granted and role >= REQUIRED_ROLE[action]:
        authorize(principal, asked, action)
        return
    with pytest.raises(ServiceError) as caught:
        authorize(principal, asked, action)
    assert caught.value.code is grpc.StatusCode.PERMISSION_DENIED


@settings(max_examples=100, deadline=None)
@given(granted=st.frozensets(namespaces, max_size=5), asked=namespaces)
def test_star_is_the_only_wildcard(granted: frozenset[str], asked: str) -> None:
    assert Principal("u", Role.ADMIN, granted | {"*"}).grants(asked)
    assert Principal("u", Role.ADMIN, granted).grants(asked) == (asked in granted)


# --- operator CLI --------------------------------------------------------------------


def test_cli_hash_token_reads_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(ALICE_TOKEN + "\n"))
    assert main(["hash-token"]) == 0
    out = capsys.readouterr()
    assert out.out == hash_token(ALICE_TOKEN) + "\n"
    assert ALICE_TOKEN not in out.out + out.err


@pytest.mark.parametrize("stdin", ["", "\n", "two words\n", "x" * 5000])
def test_cli_hash_token_refuses_unusable_tokens(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stdin: str
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    assert main(["hash-token"]) == 2
    assert capsys.readouterr().out == ""


def test_cli_new_token_prints_a_matching_hash(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new-token"]) == 0
    lines = capsys.readouterr().out.splitlines()
    token = lines[0].removeprefix("token: ")
    assert lines[1] == f"token_sha256: {hash_token(token)}"
    assert bearer_token(bearer(token)) == token


def test_cli_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(write_tokens(tmp_path, ENTRIES))]) == 0
    assert "3 tokens for 3 users" in capsys.readouterr().out
    bad = write_tokens(tmp_path, [entry(role="boss")], "bad.yaml")
    assert main(["check", str(bad)]) == 1
    assert "entries[0].role" in capsys.readouterr().err


def test_cli_runs_as_a_module() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "memory_service.security.identity", "hash-token"],
        input="abc\n",
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert done.stdout.strip() == hash_token("abc")
