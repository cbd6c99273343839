"""Encrypted fields at rest: AES-256-GCM (authenticated) with a key derived from
``CRM_ENCRYPTION_KEY``. Stored as ``enc1:<base64(nonce ‖ ciphertext)>``; a wrong key or a
tampered value fails loudly instead of returning garbage. ``crm rotate-key`` re-encrypts."""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.types import Text, TypeDecorator

PREFIX = "enc1:"
_keys: list[bytes] = []


def derive(secret: str) -> bytes:
    return hashlib.sha256(("crm-field-encryption:" + secret).encode("utf-8")).digest()


def configure(secret: str, *older: str) -> None:
    """Use ``secret`` for writing; ``older`` keys are still accepted for reading (rotation)."""
    _keys[:] = [derive(secret), *(derive(o) for o in older if o)]


def _active() -> list[bytes]:
    if not _keys:  # a process that built no app (``crm upgrade`` re-encrypting a column): the environment's
        from app.access.installkeys import install_secrets
        from config.default import ConfigError, from_env

        values = from_env()
        values.update(install_secrets(values))
        if not values["CRM_ENCRYPTION_KEY"]:
            raise ConfigError(f"CRM_ENV={values['CRM_ENV']}: set CRM_ENCRYPTION_KEY")
        configure(values["CRM_ENCRYPTION_KEY"], values.get("CRM_OLD_ENCRYPTION_KEY", ""))
    return _keys


def encrypt(plain: str, key: bytes | None = None) -> str:
    nonce = os.urandom(12)
    ct = AESGCM(key or _active()[0]).encrypt(nonce, plain.encode("utf-8"), PREFIX.encode())
    return PREFIX + base64.urlsafe_b64encode(nonce + ct).decode("ascii")


def decrypt(stored: str, keys: list[bytes] | None = None) -> str:
    if not stored.startswith(PREFIX):
        raise ValueError("not an encrypted value")
    raw = base64.urlsafe_b64decode(stored[len(PREFIX):].encode("ascii"))
    for key in keys or _active():
        try:
            return AESGCM(key).decrypt(raw[:12], raw[12:], PREFIX.encode()).decode("utf-8")
        except Exception:  # noqa: BLE001, S112 - InvalidTag: try the next (older) key
            continue
    raise ValueError("the value cannot be decrypted with the configured key(s)")


def is_encrypted(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


class EncryptedText(TypeDecorator[str]):
    """A text column whose values are encrypted before they reach the database."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return None if value is None else encrypt(str(value))

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return None if value is None else decrypt(value)
