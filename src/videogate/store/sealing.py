"""Secrets at rest: values we must be able to read back (webhook signing secrets) are
stored encrypted with a key derived from the service secret; API keys are only ever
stored as hashes (``signing.hash_api_key``).

AES-256-GCM (``cryptography``), a fresh 96-bit nonce per value, and the row it belongs to
as associated data, so a sealed value copied onto another row does not open. The key is
HKDF-SHA256 of the service secret (``VIDEOGATE_SECRET_KEY``, or the one generated into the
database): whoever has the database but not that secret cannot read the values. Sealed
values look like ``v1:<base64url>``; anything else is a value from before encryption, read
as it is until :meth:`KeyStore.seal_plaintext_secrets` rewrites it.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "v1:"
_NONCE = 12
_INFO = b"videogate secrets at rest v1"


class SecretUnreadable(Exception):
    """A sealed value that no known key opens (the service secret changed, or it was
    altered)."""


def _key(service_secret: str) -> AESGCM:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        service_secret.encode()
    )
    return AESGCM(derived)


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)


class SecretBox:
    """Seals with the current service secret; opens with it or any older one given."""

    def __init__(self, service_secret: str, *older_secrets: str) -> None:
        if not service_secret:
            raise ValueError("a SecretBox needs a non-empty service secret")
        self._keys = [_key(s) for s in (service_secret, *older_secrets) if s]

    def seal(self, plaintext: str, row: str) -> str:
        """``plaintext`` encrypted for the row named ``row`` (e.g. ``api_keys/<id>``)."""
        nonce = os.urandom(_NONCE)
        sealed = self._keys[0].encrypt(nonce, plaintext.encode(), row.encode())
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode()

    def open(self, stored: str, row: str) -> str:
        """The plaintext of a sealed value (a value stored before encryption: as it is)."""
        if not is_sealed(stored):
            return stored
        return self._open(stored, row)[0]

    def needs_sealing(self, stored: str, row: str) -> bool:
        """Stored in clear, or sealed with an older secret: to be sealed again."""
        return not is_sealed(stored) or self._open(stored, row)[1] > 0

    def _open(self, stored: str, row: str) -> tuple[str, int]:
        text = stored.removeprefix(PREFIX)
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            raise SecretUnreadable("the stored secret is not valid base64") from None
        for index, key in enumerate(self._keys):
            try:
                plain = key.decrypt(raw[:_NONCE], raw[_NONCE:], row.encode())
            except InvalidTag:
                continue
            return plain.decode(), index
        raise SecretUnreadable(
            "the stored secret does not open with the service secret (was "
            "VIDEOGATE_SECRET_KEY changed, or the row altered?)"
        )
