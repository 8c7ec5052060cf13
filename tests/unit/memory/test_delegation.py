"""Delegation: a service acting on behalf of a user (identity.acting_principal)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from google.rpc import error_details_pb2
from hypothesis import given
from hypothesis import strategies as st

from memory_service.security.identity import (
    ON_BEHALF_OF_HEADER,
    Action,
    Principal,
    Role,
    TokenAuthenticator,
    TokenFileError,
    acting_principal,
    authorize,
    hash_token,
    load_tokens_file,
    main,
)
from memory_service.servicekit.errors import ServiceError

EXECUTOR_TOKEN = "executor-Secret-Token-0123456789abcdef"  # noqa: S105
ALICE_TOKEN = "alice-Secret-Token-0123456789abcdefXYZ"  # noqa: S105
TEAMS = frozenset({"team-a"})
EXECUTOR = Principal("svc:executor", Role.WRITER, TEAMS, may_delegate=True)
ALICE = Principal("alice", Role.WRITER, TEAMS)
# What _TOKENISH in identity.py calls token-like: a message never shows one.
TOKENISH = re.compile(r"[A-Za-z0-9\-._~+/=]{16,}")


def entries(delegate: object = True) -> list[dict[str, Any]]:
    return [
        {
            "token_sha256": hash_token(EXECUTOR_TOKEN),
            "user_id": "svc:executor",
            "role": "writer",
            "namespaces": ["team-a"],
            "delegate": delegate,
        },
        {
            "token_sha256": hash_token(ALICE_TOKEN),
            "user_id": "alice",
            "role": "writer",
            "namespaces": ["team-a"],
        },
    ]


def tokens_file(tmp_path: Path, data: list[dict[str, Any]]) -> Path:
    path = tmp_path / "tokens.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def on_behalf_of(*values: str | bytes) -> list[tuple[str, str | bytes]]:
    return [("authorization", f"Bearer {EXECUTOR_TOKEN}")] + [
        (ON_BEHALF_OF_HEADER, value) for value in values
    ]


def refused(principal: Principal, metadata: list[tuple[str, str | bytes]]) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        acting_principal(principal, metadata)
    return caught.value


def reason(error: ServiceError) -> str:
    [info] = [d for d in error.details if isinstance(d, error_details_pb2.ErrorInfo)]
    return str(info.reason)


# --- tokens files --------------------------------------------------------------------


def test_delegate_is_read_from_the_tokens_file(tmp_path: Path) -> None:
    auth = TokenAuthenticator.from_file(tokens_file(tmp_path, entries()))
    executor = auth.authenticate(on_behalf_of())
    assert executor == EXECUTOR
    alice = auth.authenticate([("authorization", f"Bearer {ALICE_TOKEN}")])
    assert not alice.may_delegate  # Absent: false, as every existing file.


@pytest.mark.parametrize("value", ["yes", 1, "true", None])
def test_delegate_must_be_a_boolean(tmp_path: Path, value: object) -> None:
    with pytest.raises(TokenFileError) as caught:
        load_tokens_file(tokens_file(tmp_path, entries(delegate=value)))
    assert "entries[0].delegate: must be true or false" in str(caught.value)


def test_check_counts_the_delegates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tokens_file(tmp_path, entries()))]) == 0
    assert "1 may act on behalf of users (delegate: true)" in capsys.readouterr().out


# --- acting_principal ------------------------------------------------------------------


def test_no_header_leaves_the_principal_unchanged() -> None:
    assert acting_principal(EXECUTOR, on_behalf_of()) is EXECUTOR
    assert acting_principal(ALICE, []) is ALICE


def test_a_delegate_acts_as_the_named_user_within_its_own_rights() -> None:
    acting = acting_principal(EXECUTOR, on_behalf_of("bob@example.com"))
    assert acting == Principal(
        "bob@example.com", Role.WRITER, TEAMS, may_delegate=False, delegated_by="svc:executor"
    )
    authorize(acting, "team-a", Action.WRITE)
    with pytest.raises(ServiceError):
        authorize(acting, "team-b", Action.READ)  # The service's namespaces, no more.


def test_header_names_match_case_insensitively_and_bytes_decode() -> None:
    acting = acting_principal(EXECUTOR, [("Attune-On-Behalf-Of", b"alice")])
    assert (acting.user_id, acting.delegated_by) == ("alice", "svc:executor")


def test_a_delegated_principal_cannot_delegate_again() -> None:
    acting = acting_principal(EXECUTOR, on_behalf_of("alice"))
    error = refused(acting, on_behalf_of("bob"))
    assert error.code is grpc.StatusCode.PERMISSION_DENIED


def test_a_principal_without_delegate_is_permission_denied() -> None:
    error = refused(ALICE, on_behalf_of("bob"))
    assert error.code is grpc.StatusCode.PERMISSION_DENIED
    assert reason(error) == "DELEGATION_NOT_GRANTED"
    assert "delegate: true" in error.message
    assert "'alice'" in error.message


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (("alice", "bob"), "is repeated"),
        (("alice", "alice"), "is repeated"),
        (("",), "must be a user id"),
        (("alice smith",), "got 'alice smith'"),
        (("a" * 129,), "must be a user id"),
        ((b"\xff",), "is not ASCII"),
        (("anonymous",), "reserved for unauthenticated development"),
    ],
)
def test_malformed_headers_are_unauthenticated(values: tuple[str | bytes], expected: str) -> None:
    error = refused(EXECUTOR, on_behalf_of(*values))
    assert error.code is grpc.StatusCode.UNAUTHENTICATED
    assert reason(error) == "MALFORMED_DELEGATION"
    assert expected in error.message


def test_anonymous_may_be_named_only_with_authentication_off() -> None:
    assert Principal.ANONYMOUS.may_delegate
    acting = acting_principal(Principal.ANONYMOUS, on_behalf_of("anonymous"))
    assert (acting.user_id, acting.delegated_by) == ("anonymous", "anonymous")
    acting = acting_principal(Principal.ANONYMOUS, on_behalf_of("alice"))
    assert (acting.user_id, acting.role, acting.all_namespaces) == ("alice", Role.ADMIN, True)


def test_a_token_sent_as_the_header_is_never_echoed() -> None:
    for value in (f"Bearer {ALICE_TOKEN}", f"{ALICE_TOKEN} ", f"x/{ALICE_TOKEN}"):
        error = refused(EXECUTOR, on_behalf_of(value))
        assert ALICE_TOKEN not in error.message
        assert ALICE_TOKEN[:16] not in error.message


header_values = st.one_of(
    st.text(max_size=300),
    st.text(alphabet="ABCxyz019-._~+/= :@", max_size=300),
    st.binary(max_size=50),
)


@given(st.lists(header_values, max_size=3), st.sampled_from([EXECUTOR, ALICE]))
def test_any_header_acts_or_is_a_service_error_showing_no_token(
    values: list[str | bytes], principal: Principal
) -> None:
    metadata = on_behalf_of(*values)
    error: ServiceError | None = None
    try:
        acting = acting_principal(principal, metadata)
    except ServiceError as raised:  # Anything else fails the test.
        error = raised
    if error is not None:
        assert error.code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
        assert len(error.message) < 400
        for value in values:
            text = value.decode("latin-1") if isinstance(value, bytes) else value
            for run in TOKENISH.findall(text):
                assert run[:16] not in error.message
    elif values:
        [value] = values
        assert principal.may_delegate
        assert acting.user_id == (value.decode("ascii") if isinstance(value, bytes) else value)
        assert acting.delegated_by == principal.user_id
    else:
        assert acting is principal
