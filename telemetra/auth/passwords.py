"""Argon2id password hashing (argon2-cffi with its recommended parameters).

With ``TELEMETRA_ENV=test`` the app hashes with argon2-cffi's cheapest parameters instead
(``profiles.CHEAPEST``, made for tests): about 0.1 ms against about 50 ms, which was most of
the suite's time (every test's server seeds its admin and logs in). A hash names its own
parameters, so either kind verifies under the other.
"""

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
_dummy_hash: str | None = None


def use_test_parameters() -> None:
    """Cheapest parameters, for ``TELEMETRA_ENV=test`` only: never for real passwords."""
    global _hasher, _dummy_hash
    _hasher, _dummy_hash = PasswordHasher.from_parameters(profiles.CHEAPEST), None


def _dummy() -> str:
    """Verified against when the user does not exist, so a login costs the same either way."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash("telemetra-no-such-user")
    return _dummy_hash


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _dummy(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False
