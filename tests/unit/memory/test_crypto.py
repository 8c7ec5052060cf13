"""AES-256-GCM envelopes, the keyring, key parsing and rotation."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memory_service.security.crypto import (
    ACTIVE_KEY_SETTING,
    ENVELOPE_VERSION,
    KEY_FILE_SETTING,
    KEYS_SETTING,
    NONCE_BYTES,
    TAG_BYTES,
    DecryptionError,
    KeyConfigError,
    Keyring,
    MissingKeyError,
    envelope_key_id,
    generate_key,
    main,
    parse_key_file_text,
)

K1 = generate_key()
K2 = generate_key()
PATTERN_ID = b"run-01JABCDEF"


def ring(keys: str, active: str | None = None) -> Keyring:
    return Keyring.from_settings(keys, None, active)


ONE = ring(f"k1:{K1}")
TWO = ring(f"k1:{K1},k2:{K2}", "k2")


def error_chain(error: BaseException) -> str:
    """Every message and repr in the error and its causes and contexts."""
    parts: list[str] = []
    current: BaseException | None = error
    while current is not None:
        parts += [str(current), repr(current)]
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


# --- round trip and envelope format -----------------------------------------


def test_round_trip() -> None:
    envelope = ONE.encrypt(b"the secret recipe", PATTERN_ID)
    assert ONE.decrypt(envelope, PATTERN_ID) == b"the secret recipe"


def test_empty_plaintext_round_trips() -> None:
    assert ONE.decrypt(ONE.encrypt(b"", PATTERN_ID), PATTERN_ID) == b""


def test_envelope_layout() -> None:
    envelope = TWO.encrypt(b"abc", PATTERN_ID)
    assert envelope[0] == ENVELOPE_VERSION
    assert envelope[1] == 2
    assert envelope[2:4] == b"k2"
    assert len(envelope) == 4 + NONCE_BYTES + 3 + TAG_BYTES
    assert envelope_key_id(envelope) == "k2"


def test_nonces_are_fresh() -> None:
    envelopes = {ONE.encrypt(b"same", PATTERN_ID) for _ in range(50)}
    assert len(envelopes) == 50


def test_repr_shows_ids_not_keys() -> None:
    text = repr(TWO)
    assert "k1" in text
    assert "k2" in text
    assert K1 not in text
    assert K2 not in text


# --- associated data and tampering ------------------------------------------


def test_associated_data_binds_the_pattern_id() -> None:
    envelope = ONE.encrypt(b"payload", b"pattern-a")
    with pytest.raises(DecryptionError, match="associated data"):
        ONE.decrypt(envelope, b"pattern-b")


@settings(max_examples=150)
@given(
    plaintext=st.binary(max_size=64),
    data=st.data(),
)
def test_flipping_any_byte_fails(plaintext: bytes, data: st.DataObject) -> None:
    envelope = bytearray(TWO.encrypt(plaintext, PATTERN_ID))
    index = data.draw(st.integers(0, len(envelope) - 1), label="index")
    mask = data.draw(st.integers(1, 255), label="mask")
    envelope[index] ^= mask
    with pytest.raises(DecryptionError):
        TWO.decrypt(bytes(envelope), PATTERN_ID)


@pytest.mark.parametrize("cut", [0, 1, 2, 3, 4 + NONCE_BYTES, 4 + NONCE_BYTES + TAG_BYTES - 1])
def test_truncated_envelopes_fail(cut: int) -> None:
    envelope = TWO.encrypt(b"", PATTERN_ID)
    with pytest.raises(DecryptionError):
        TWO.decrypt(envelope[:cut], PATTERN_ID)


def test_appended_bytes_fail() -> None:
    envelope = ONE.encrypt(b"payload", PATTERN_ID)
    with pytest.raises(DecryptionError):
        ONE.decrypt(envelope + b"\x00", PATTERN_ID)


def test_unsupported_version() -> None:
    envelope = bytes([2]) + ONE.encrypt(b"payload", PATTERN_ID)[1:]
    with pytest.raises(DecryptionError, match="version 2"):
        ONE.decrypt(envelope, PATTERN_ID)


@settings(max_examples=150)
@given(plaintext=st.binary(min_size=8, max_size=256))
def test_envelope_never_contains_the_plaintext(plaintext: bytes) -> None:
    assert plaintext not in TWO.encrypt(plaintext, PATTERN_ID)


# --- rotation -----------------------------------------------------------------


def test_rotation_keeps_old_envelopes_readable() -> None:
    before = ring(f"k1:{K1}")
    old = before.encrypt(b"sealed under k1", PATTERN_ID)
    assert not before.needs_reencrypt(old)

    after = ring(f"k1:{K1},k2:{K2}", "k2")
    assert after.decrypt(old, PATTERN_ID) == b"sealed under k1"
    assert after.needs_reencrypt(old)

    new = after.reencrypt(old, PATTERN_ID)
    assert envelope_key_id(new) == "k2"
    assert not after.needs_reencrypt(new)
    assert after.decrypt(new, PATTERN_ID) == b"sealed under k1"
    # The re-encrypted record no longer depends on the retired key.
    with pytest.raises(DecryptionError, match="'k2'"):
        ring(f"k1:{K1}").decrypt(new, PATTERN_ID)


def test_encrypt_always_uses_the_active_key() -> None:
    k1_active = ring(f"k1:{K1},k2:{K2}", "k1")
    assert envelope_key_id(k1_active.encrypt(b"x", PATTERN_ID)) == "k1"
    assert envelope_key_id(TWO.encrypt(b"x", PATTERN_ID)) == "k2"


def test_unknown_key_id() -> None:
    envelope = ring(f"old:{K1}").encrypt(b"payload", PATTERN_ID)
    with pytest.raises(DecryptionError, match="'old', which is not configured"):
        TWO.decrypt(envelope, PATTERN_ID)


def test_same_id_different_key_fails_authentication() -> None:
    envelope = ring(f"k1:{K1}").encrypt(b"payload", PATTERN_ID)
    with pytest.raises(DecryptionError, match="authentication"):
        ring(f"k1:{K2}").decrypt(envelope, PATTERN_ID)


# --- configuration --------------------------------------------------------------


def test_single_key_is_active_without_setting() -> None:
    assert ONE.active_key_id == "k1"
    assert ONE.configured


def test_several_keys_need_an_active_id() -> None:
    with pytest.raises(KeyConfigError, match=ACTIVE_KEY_SETTING):
        ring(f"k1:{K1},k2:{K2}")


def test_active_id_must_be_configured() -> None:
    with pytest.raises(KeyConfigError, match="'k3', which is not a configured key"):
        ring(f"k1:{K1},k2:{K2}", "k3")


def test_url_safe_and_unpadded_keys() -> None:
    raw = bytes(range(250, 256)) * 5 + b"\xfb\xff"  # encodes with - and _ in URL-safe form
    urlsafe = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    assert "-" in urlsafe or "_" in urlsafe
    keyring = ring(f"u:{urlsafe}")
    reference = Keyring({"u": raw}, None)
    assert reference.decrypt(keyring.encrypt(b"x", PATTERN_ID), PATTERN_ID) == b"x"


def test_whitespace_and_trailing_commas_are_tolerated() -> None:
    keyring = ring(f" k1 : {K1} , k2:{K2}, ", " k2 ")
    assert keyring.key_ids == {"k1", "k2"}
    assert keyring.active_key_id == "k2"


@pytest.mark.parametrize("size", [16, 24, 31, 33, 64])
def test_wrong_key_length_names_the_id_not_the_key(size: int) -> None:
    raw = os.urandom(size)
    encoded = base64.b64encode(raw).decode()
    with pytest.raises(KeyConfigError) as caught:
        ring(f"prod-2025:{encoded}")
    text = error_chain(caught.value)
    assert "'prod-2025'" in text
    assert f"{size} bytes" in text
    assert encoded not in text
    assert encoded.rstrip("=")[:8] not in text
    assert raw.hex() not in text
    assert repr(raw) not in text


@settings(max_examples=100)
@given(raw=st.binary(min_size=6, max_size=80).filter(lambda b: len(b) != 32))
def test_bad_key_errors_never_echo_key_material(raw: bytes) -> None:
    encoded = base64.b64encode(raw).decode()
    with pytest.raises(KeyConfigError) as caught:
        Keyring.from_settings(f"k:{encoded}", None, None)
    text = error_chain(caught.value)
    assert encoded.rstrip("=") not in text
    assert raw.hex() not in text


@pytest.mark.parametrize(
    "entry",
    [
        "k1:not*base64*at*all*",
        "k1:QUJD=ZGVm",  # padding in the middle
        "k1:" + "A" * 43 + "!",
    ],
)
def test_invalid_base64_is_rejected_without_echo(entry: str) -> None:
    with pytest.raises(
        KeyConfigError, match=r"key 'k1' \(.*item 1\) is not valid base64"
    ) as caught:
        ring(entry)
    assert entry.split(":", 1)[1] not in error_chain(caught.value)


def test_entry_without_id_does_not_echo_the_value() -> None:
    with pytest.raises(KeyConfigError, match=f"{KEYS_SETTING} item 2") as caught:
        ring(f"k1:{K1},{K2}")
    text = error_chain(caught.value)
    assert K2 not in text
    assert K2[:8] not in text


def test_pasted_key_as_id_is_not_echoed() -> None:
    # A key pasted where the id belongs (with a colon after it) is no valid id.
    with pytest.raises(KeyConfigError, match="key id must be") as caught:
        ring(f"{K1}:{K2}")
    assert K1 not in error_chain(caught.value)


def test_duplicate_ids_are_rejected() -> None:
    with pytest.raises(KeyConfigError, match="'k1' is configured more than once"):
        ring(f"k1:{K1},k1:{K2}")


def test_empty_key_is_rejected() -> None:
    with pytest.raises(KeyConfigError, match=r"'k1'.*empty"):
        ring("k1:  ")


def test_key_file_with_comments_and_blank_lines(tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text(
        f"# rotated 2025-01\n\nk1:{K1}\n   \n  # current\nk2:{K2}\r\n",
        encoding="utf-8",
    )
    keyring = Keyring.from_settings(None, key_file, "k2")
    assert keyring.key_ids == {"k1", "k2"}
    old = ring(f"k1:{K1}").encrypt(b"x", PATTERN_ID)
    assert keyring.decrypt(old, PATTERN_ID) == b"x"


def test_key_file_errors_name_the_line() -> None:
    with pytest.raises(KeyConfigError, match="line 3") as caught:
        parse_key_file_text(f"# keys\nk1:{K1}\nk2:{K2[:20]}\n")
    assert K2[:20] not in error_chain(caught.value)


def test_keys_merge_from_setting_and_file(tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text(f"k2:{K2}\n", encoding="utf-8")
    keyring = Keyring.from_settings(f"k1:{K1}", key_file, "k2")
    assert keyring.key_ids == {"k1", "k2"}
    key_file.write_text(f"k1:{K2}\n", encoding="utf-8")
    with pytest.raises(KeyConfigError, match="more than once"):
        Keyring.from_settings(f"k1:{K1}", key_file, None)


def test_unreadable_key_file(tmp_path: Path) -> None:
    with pytest.raises(KeyConfigError, match=KEY_FILE_SETTING):
        Keyring.from_settings(None, tmp_path / "missing", None)


# --- no key -------------------------------------------------------------------


def test_empty_keyring_is_not_configured() -> None:
    keyring = Keyring.from_settings(None, None, None)
    assert not keyring.configured
    assert keyring.active_key_id is None
    assert Keyring.from_settings("", None, "").key_ids == frozenset()


def test_encrypt_without_key_raises_missing_key() -> None:
    keyring = Keyring.from_settings(None, None, None)
    with pytest.raises(MissingKeyError) as caught:
        keyring.encrypt(b"x", PATTERN_ID)
    message = str(caught.value)
    assert KEYS_SETTING in message
    assert KEY_FILE_SETTING in message
    assert "generate-key" in message


def test_decrypt_without_key_raises_missing_key() -> None:
    envelope = ONE.encrypt(b"x", PATTERN_ID)
    with pytest.raises(MissingKeyError, match="SENSITIVE patterns exist"):
        Keyring.from_settings(None, None, None).decrypt(envelope, PATTERN_ID)


def test_missing_key_error_default_message() -> None:
    message = str(MissingKeyError())
    assert message.startswith("SENSITIVE patterns exist or are being stored")
    assert KEYS_SETTING in message


# --- key generation -------------------------------------------------------------


def test_generate_key_is_32_random_bytes() -> None:
    keys = {generate_key() for _ in range(20)}
    assert len(keys) == 20
    assert all(len(base64.b64decode(key, validate=True)) == 32 for key in keys)
    # A generated key is directly usable.
    ring(f"fresh:{keys.pop()}")


def test_cli_generate_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate-key"]) == 0
    key = capsys.readouterr().out.strip()
    assert len(base64.b64decode(key, validate=True)) == 32

    assert main(["generate-key", "--key-id", "k3"]) == 0
    line = capsys.readouterr().out.strip()
    assert ring(line).key_ids == {"k3"}


def test_cli_rejects_bad_key_id(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["generate-key", "--key-id", "no spaces"])
    assert caught.value.code == 2
    assert "key id must be" in capsys.readouterr().err
