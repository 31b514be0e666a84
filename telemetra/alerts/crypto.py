"""Webhook secrets at rest: encrypted with a key derived from ``TELEMETRA_SECRET_KEY``.

A webhook secret must be read back in the clear to sign each delivery, so it cannot be a
hash; it is stored as a Fernet token (AES-128-CBC with HMAC-SHA256, from ``cryptography``)
whose key HKDF derives from the platform's secret key, under a label of its own so it is
never the key that signs access tokens.
"""

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_LABEL = b"telemetra webhook secrets v1"


class SecretBox:
    """Encrypts and decrypts webhook secrets with one derived key."""

    def __init__(self, secret_key: str) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                   info=_LABEL).derive(secret_key.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, secret: str) -> str:
        """The stored form of ``secret``."""
        return self._fernet.encrypt(secret.encode()).decode("ascii")

    def open(self, sealed: str) -> str | None:
        """The secret ``seal`` made, or None when it was sealed with another key (the secret
        key changed since): such a rule's deliveries fail, saying so."""
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode()
        except (InvalidToken, ValueError):
            return None
