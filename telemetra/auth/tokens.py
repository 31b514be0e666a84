"""Access JWTs (short-lived, HS256) and opaque refresh tokens (stored only as a hash)."""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from telemetra.kit.errors import Unauthorized
from telemetra.kit.secrets import random_token
from telemetra.kit.timeutil import utcnow

ALGORITHM = "HS256"
REFRESH_PREFIX = "trt_"


@dataclass(frozen=True)
class AccessClaims:
    user_id: int
    jti: str
    expires_at: datetime


def issue_access_token(user_id: int, secret: str, minutes: int) -> tuple[str, int]:
    """A signed access token and its lifetime in seconds."""
    now = utcnow()
    claims = {"sub": str(user_id), "jti": uuid.uuid4().hex, "iat": now,
              "exp": now + timedelta(minutes=minutes), "typ": "access"}
    return jwt.encode(claims, secret, algorithm=ALGORITHM), minutes * 60


def decode_access_token(token: str, secret: str) -> AccessClaims:
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM],
                            options={"require": ["sub", "jti", "exp"]})
    except jwt.ExpiredSignatureError:
        raise Unauthorized("access token expired") from None
    except jwt.PyJWTError:
        raise Unauthorized("invalid access token") from None
    if claims.get("typ") != "access" or not str(claims["sub"]).isdigit():
        raise Unauthorized("invalid access token")
    return AccessClaims(user_id=int(claims["sub"]), jti=str(claims["jti"]),
                        expires_at=datetime.fromtimestamp(claims["exp"], tz=utcnow().tzinfo))


def new_refresh_token() -> str:
    return random_token(REFRESH_PREFIX)
