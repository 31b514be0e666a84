"""Secrets at rest that must be read back in the clear (webhook secrets, connector headers):
encrypted with a key derived from ``TELEMETRA_SECRET_KEY``.

Such a secret cannot be a hash (it signs each delivery, or is sent upstream), so it is stored
as a Fernet token (AES-128-CBC with HMAC-SHA256, from ``cryptography``) whose key HKDF derives
from the platform's secret key, under a label per use, so it is never the key that signs
access tokens and one use's tokens do not open another's.
"""

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

WEBHOOK_SECRETS = b"telemetra webhook secrets v1"
CONNECTOR_HEADERS = b"telemetra connector headers v1"


class SecretBox:
    """Encrypts and decrypts secrets of one use (``label``) with one derived key."""

    def __init__(self, secret_key: str, label: bytes = WEBHOOK_SECRETS) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                   info=label).derive(secret_key.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, secret: str) -> str:
        """The stored form of ``secret``."""
        return self._fernet.encrypt(secret.encode()).decode("ascii")

    def open(self, sealed: str) -> str | None:
        """The secret ``seal`` made, or None when it was sealed with another key (the secret
        key changed since): its user fails, saying so."""
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode()
        except (InvalidToken, ValueError):
            return None
