"""One way to resolve a secret setting that may instead name a file holding it.

Both services read such settings at start (settings validation), so a
missing or unreadable secret stops the service at once. Messages name the
setting and the file, never the secret.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

__all__ = ["SecretSettingError", "read_secret_file", "resolve_secret"]


class SecretSettingError(ValueError):
    """A secret setting is unusable; the message names the setting, not the value."""


def read_secret_file(path: Path, setting: str, *, allow_empty: bool = False) -> SecretStr:
    """The file's UTF-8 text without surrounding whitespace (a trailing newline
    of a mounted secret is not part of it); empty is an error unless allowed."""
    source = f"{setting} ({path})"
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        # Not the decoder's message: it quotes the bytes it could not decode.
        raise SecretSettingError(f"{source} is not UTF-8 text") from None
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise SecretSettingError(f"{source} cannot be read: {reason}") from None
    text = text.strip()
    if not text and not allow_empty:
        raise SecretSettingError(f"{source} is empty")
    return SecretStr(text)


def resolve_secret(
    value: SecretStr | None, file: Path | None, setting: str, what: str = "one is used"
) -> SecretStr | None:
    """The secret of `setting`, given either as itself or as `{setting}_FILE`.

    None when neither is set; both set is an error, since which one wins
    would be a guess; `what` ends that message ("which {what}").
    """
    if value is not None and file is not None:
        raise SecretSettingError(
            f"set {setting} or {setting}_FILE, not both: it would be ambiguous which {what}"
        )
    if file is not None:
        return read_secret_file(file, f"{setting}_FILE")
    return value
