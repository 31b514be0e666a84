"""Access JWTs (short-lived, HS256) and opaque refresh tokens (stored only as a hash).

An access token names its user (``sub``), that user's security stamp when it was issued
(``sst``) and its session, the refresh-token family it came with (``sid``). Each request
checks all three against the database (auth.dependencies), so a token ends with its user,
with a new stamp (password change) and with its session (logout, refresh-token reuse).
"""

import re
import uuid
from dataclasses import dataclass
from datetime import timedelta

import jwt

from telemetra.kit.errors import Unauthorized
from telemetra.kit.secrets import random_token
from telemetra.kit.timeutil import utcnow

ALGORITHM = "HS256"
REFRESH_PREFIX = "trt_"
# A user id as issued: ASCII digits, no sign, no leading zero, no spaces (int() would take
# "٣" for 3 and " 3" for 3), within the columns' 32-bit range.
_USER_ID = re.compile(r"[1-9][0-9]{0,9}")
_MAX_USER_ID = 2**31 - 1
_MAX_CLAIM_CHARS = 64


@dataclass(frozen=True)
class AccessClaims:
    user_id: int
    session_id: str
    security_stamp: str


def issue_access_token(user_id: int, security_stamp: str, session_id: str, secret: str,
                       minutes: int) -> tuple[str, int]:
    """A signed access token and its lifetime in seconds."""
    now = utcnow()
    claims = {"sub": str(user_id), "sst": security_stamp, "sid": session_id,
              "jti": uuid.uuid4().hex, "iat": now, "exp": now + timedelta(minutes=minutes),
              "typ": "access"}
    return jwt.encode(claims, secret, algorithm=ALGORITHM), minutes * 60


def _short_string(value) -> bool:
    return isinstance(value, str) and 0 < len(value) <= _MAX_CLAIM_CHARS


def decode_access_token(token: str, secret: str) -> AccessClaims:
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM],
                            options={"require": ["sub", "sid", "sst", "exp"]})
    except jwt.ExpiredSignatureError:
        raise Unauthorized("access token expired") from None
    except jwt.PyJWTError:
        raise Unauthorized("invalid access token") from None
    sub = claims["sub"]
    valid = (claims.get("typ") == "access" and isinstance(sub, str)
             and _USER_ID.fullmatch(sub) is not None and int(sub) <= _MAX_USER_ID
             and _short_string(claims["sid"]) and _short_string(claims["sst"]))
    if not valid:
        raise Unauthorized("invalid access token")
    return AccessClaims(user_id=int(sub), session_id=claims["sid"],
                        security_stamp=claims["sst"])


def new_refresh_token() -> str:
    return random_token(REFRESH_PREFIX)
