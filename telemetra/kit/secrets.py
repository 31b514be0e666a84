"""Random secrets, their storable hashes and constant-time comparison."""

import hashlib
import hmac
import secrets


def random_token(prefix: str = "", nbytes: int = 32) -> str:
    """A URL-safe random token with ``nbytes`` of entropy (>= 32 for anything long-lived)."""
    return prefix + secrets.token_urlsafe(nbytes)


def token_hash(token: str) -> str:
    """SHA-256 of a high-entropy token: such a token needs no slow hash, only no plain text."""
    return hashlib.sha256(token.encode()).hexdigest()


def same_hash(token: str, expected_hash: str) -> bool:
    """Does ``token`` hash to ``expected_hash``? Constant time in the compared bytes."""
    return hmac.compare_digest(token_hash(token), expected_hash)
