"""Encryption at rest for SENSITIVE patterns: AES-256-GCM under a keyring.

Keys carry ids so that keys can be rotated: new records are always encrypted
under the active key, and every envelope names the key it was sealed with, so
records sealed under an older key stay readable until they are re-encrypted.

Envelope format (version 1), all lengths in bytes::

    +---------+--------+--------------+----------+----------------------------+
    | version | id len | key id       | nonce    | ciphertext || GCM tag      |
    | 1: 0x01 | 1: n   | n: ASCII     | 12       | len(plaintext) + 16        |
    +---------+--------+--------------+----------+----------------------------+

The header (version, id length, key id) is authenticated together with the
caller's associated data (the pattern id), so neither can be changed without
decryption failing. The nonce is 96 random bits per encryption; at that size,
keep each key under about 2**32 encryptions (rotate long before that).

Configuration: ``id:base64key`` pairs, comma-separated, or a file with one pair
per line (a mounted Kubernetes secret; ``#`` comments and blank lines are
ignored). Keys are 32 random bytes in standard or URL-safe base64, padding
optional. Generate one with::

    attune-memory-admin keys generate [--key-id ID]

(`python -m memory_service.security.crypto generate-key` remains as an alias.)
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from memory_service.servicekit.secret_settings import SecretSettingError, read_secret_file

ENVELOPE_VERSION: Final = 1
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
KEY_BYTES: Final = 32
KEY_ID_RE: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")

# The memory service settings (env vars) that configure the keyring; errors
# name them so an operator knows what to set.
KEYS_SETTING: Final = "MEMORY_ENCRYPTION_KEYS"
KEY_FILE_SETTING: Final = "MEMORY_ENCRYPTION_KEY_FILE"
ACTIVE_KEY_SETTING: Final = "MEMORY_ENCRYPTION_ACTIVE_KEY_ID"


class KeyConfigError(ValueError):
    """The key configuration is invalid. Messages name key ids, never keys."""


class DecryptionError(Exception):
    """An envelope cannot be opened: malformed, unknown key, or not authentic."""


class MissingKeyError(Exception):
    """SENSITIVE data exists or is being stored, but no key is configured."""

    def __init__(self, situation: str = "SENSITIVE patterns exist or are being stored") -> None:
        super().__init__(
            f"{situation} but no encryption key is configured: set {KEYS_SETTING} "
            f'("id:base64key", comma-separated) or {KEY_FILE_SETTING} (a file with one '
            f'"id:base64key" per line). Generate a key with '
            f"`python -m memory_service.security.crypto generate-key`."
        )


def generate_key() -> str:
    """Return a fresh random 256-bit key in standard base64."""
    return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode("ascii")


def check_key_id(key_id: str, where: str) -> None:
    """KeyConfigError unless the key id is well formed; `where` names its source."""
    if not KEY_ID_RE.fullmatch(key_id):
        # The id is not secret, but a malformed "id" may be a pasted key: show
        # only its length.
        raise KeyConfigError(
            f"{where}: a key id must be 1 to 64 characters of [A-Za-z0-9._-] "
            f"(got {len(key_id)} characters)"
        )


def _decode_key(key_id: str, encoded: str, where: str) -> bytes:
    text = encoded.strip()
    # Accept URL-safe base64 and missing padding; validate=True rejects junk.
    text = text.replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        # `from None`: the cause is useless to an operator and may echo input.
        raise KeyConfigError(f"key {key_id!r} ({where}) is not valid base64") from None
    if len(raw) != KEY_BYTES:
        raise KeyConfigError(
            f"key {key_id!r} ({where}) is {len(raw)} bytes; AES-256 needs exactly {KEY_BYTES} "
            f"(generate one with `python -m memory_service.security.crypto generate-key`)"
        )
    return raw


def _parse_entry(entry: str, where: str) -> tuple[str, bytes]:
    key_id, sep, encoded = entry.partition(":")
    key_id = key_id.strip()
    if not sep or not key_id:
        raise KeyConfigError(f'{where}: expected "id:base64key"')
    check_key_id(key_id, where)
    if not encoded.strip():
        raise KeyConfigError(f"key {key_id!r} ({where}) is empty")
    return key_id, _decode_key(key_id, encoded, where)


def parse_keys(keys: str) -> list[tuple[str, bytes]]:
    """Parse ``"id1:base64key,id2:base64key"``; empty items are skipped."""
    parsed: list[tuple[str, bytes]] = []
    for index, entry in enumerate(keys.split(","), start=1):
        if entry.strip():
            parsed.append(_parse_entry(entry, f"{KEYS_SETTING} item {index}"))
    return parsed


def parse_key_file_text(text: str, name: str = "key file") -> list[tuple[str, bytes]]:
    """Parse one ``id:base64key`` per line, skipping blank and ``#`` lines."""
    parsed: list[tuple[str, bytes]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            parsed.append(_parse_entry(stripped, f"{name} line {number}"))
    return parsed


class Keyring:
    """AES-256-GCM keys by id, one of them active for new encryptions.

    Raw keys are handed to AESGCM at once and not kept here, and the repr
    lists ids only, so a keyring in a log or traceback reveals no key.
    """

    def __init__(self, keys: Mapping[str, bytes], active_key_id: str | None) -> None:
        for key_id, raw in keys.items():
            check_key_id(key_id, "Keyring")
            if len(raw) != KEY_BYTES:
                raise KeyConfigError(
                    f"key {key_id!r} is {len(raw)} bytes; AES-256 needs exactly {KEY_BYTES}"
                )
        if active_key_id is None and len(keys) > 1:
            raise KeyConfigError(
                f"{len(keys)} keys are configured ({', '.join(sorted(keys))}): "
                f"set {ACTIVE_KEY_SETTING} to the one new data is encrypted with"
            )
        if active_key_id is not None and active_key_id not in keys:
            known = ", ".join(sorted(keys)) or "none"
            raise KeyConfigError(
                f"{ACTIVE_KEY_SETTING} is {active_key_id!r}, which is not a configured key "
                f"(configured: {known})"
            )
        self._ciphers: dict[str, AESGCM] = {key_id: AESGCM(raw) for key_id, raw in keys.items()}
        self._active: str | None = active_key_id if active_key_id else next(iter(keys), None)

    @classmethod
    def from_settings(
        cls, keys: str | None, key_file: Path | None, active_key_id: str | None
    ) -> Keyring:
        """Build the keyring from settings; an empty one if nothing is set.

        Keys may come from both sources; an id given twice is an error, since
        which key would win is a guess.
        """
        entries = parse_keys(keys) if keys else []
        if key_file is not None:
            try:
                text = read_secret_file(key_file, KEY_FILE_SETTING, allow_empty=True)
            except SecretSettingError as error:
                raise KeyConfigError(str(error)) from None
            name = f"{KEY_FILE_SETTING} {str(key_file)!r}"
            entries += parse_key_file_text(text.get_secret_value(), name)
        by_id: dict[str, bytes] = {}
        for key_id, raw in entries:
            if key_id in by_id:
                raise KeyConfigError(f"key id {key_id!r} is configured more than once")
            by_id[key_id] = raw
        active = active_key_id.strip() if active_key_id and active_key_id.strip() else None
        return cls(by_id, active)

    def __repr__(self) -> str:
        return f"Keyring(key_ids={sorted(self._ciphers)!r}, active={self._active!r})"

    @property
    def configured(self) -> bool:
        """Whether there is a key to encrypt with."""
        return self._active is not None

    @property
    def active_key_id(self) -> str | None:
        """The id of the key new envelopes are sealed with; None if no keys."""
        return self._active

    @property
    def key_ids(self) -> frozenset[str]:
        """Every configured key id."""
        return frozenset(self._ciphers)

    def encrypt(self, plaintext: bytes, associated_data: bytes) -> bytes:
        """Seal plaintext under the active key, bound to associated_data."""
        if self._active is None:
            raise MissingKeyError("a SENSITIVE pattern is being stored")
        header = _header(self._active)
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self._active].encrypt(nonce, plaintext, header + associated_data)
        return header + nonce + sealed

    def decrypt(self, envelope: bytes, associated_data: bytes) -> bytes:
        """Open an envelope with the key it names; DecryptionError otherwise."""
        key_id, header_len = _parse_header(envelope)
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            if not self._ciphers:
                raise MissingKeyError("SENSITIVE patterns exist")
            raise DecryptionError(
                f"envelope is sealed with key {key_id!r}, which is not configured "
                f"(configured: {', '.join(sorted(self._ciphers))}); a rotated-out key "
                f"must stay configured until its records are re-encrypted"
            )
        nonce = envelope[header_len : header_len + NONCE_BYTES]
        sealed = envelope[header_len + NONCE_BYTES :]
        try:
            return cipher.decrypt(nonce, sealed, envelope[:header_len] + associated_data)
        except InvalidTag:
            raise DecryptionError(
                f"envelope under key {key_id!r} failed authentication: it was altered, "
                f"or the associated data (pattern id) does not match"
            ) from None

    def needs_reencrypt(self, envelope: bytes) -> bool:
        """Whether the envelope is sealed under a key other than the active one."""
        key_id, _ = _parse_header(envelope)
        return key_id != self._active

    def reencrypt(self, envelope: bytes, associated_data: bytes) -> bytes:
        """Open an envelope and seal its plaintext again under the active key."""
        return self.encrypt(self.decrypt(envelope, associated_data), associated_data)


def envelope_key_id(envelope: bytes) -> str:
    """The id of the key an envelope is sealed with (no key needed)."""
    return _parse_header(envelope)[0]


def _header(key_id: str) -> bytes:
    encoded = key_id.encode("ascii")
    return bytes((ENVELOPE_VERSION, len(encoded))) + encoded


def _parse_header(envelope: bytes) -> tuple[str, int]:
    """Return (key id, header length), or raise DecryptionError."""
    if len(envelope) < 2:
        raise DecryptionError("envelope is too short")
    if envelope[0] != ENVELOPE_VERSION:
        raise DecryptionError(f"unsupported envelope version {envelope[0]}")
    header_len = 2 + envelope[1]
    if len(envelope) < header_len + NONCE_BYTES + TAG_BYTES:
        raise DecryptionError("envelope is too short")
    try:
        key_id = envelope[2:header_len].decode("ascii")
    except UnicodeDecodeError:
        raise DecryptionError("envelope has a malformed key id") from None
    if not KEY_ID_RE.fullmatch(key_id):
        raise DecryptionError("envelope has a malformed key id")
    return key_id, header_len


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m memory_service.security.crypto`: alias of `attune-memory-admin keys`."""
    # Imported here: the admin CLI builds on this module, not the other way round.
    from memory_service.admin.legacy import crypto_main

    return crypto_main(argv)


if __name__ == "__main__":
    sys.exit(main())
