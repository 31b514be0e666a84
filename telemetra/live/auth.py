"""A live socket's credential: the same access-token check as every request's
(``auth.dependencies``: signature, expiry, the user's security stamp, active, session live)."""

from types import SimpleNamespace

import jwt

from telemetra.auth.dependencies import _user_from_token
from telemetra.auth.principals import DEVICE_KEY_PREFIX, AuthUser
from telemetra.kit.errors import Unauthorized

CLOSE_UNAUTHORIZED = 4401  # API.md: no valid token in time, token expired, user deactivated


async def authenticate(app, token: str) -> tuple[AuthUser, float]:
    """The user of ``token`` as they are now, and when the token expires (epoch seconds);
    ``Unauthorized`` saying why not."""
    if token.startswith(DEVICE_KEY_PREFIX):
        raise Unauthorized("live sockets need a user's access token, not a device key")
    async with app.state.engine.connect() as conn:
        # _user_from_token reads only request.app; a socket has no HTTP request to hand.
        user = await _user_from_token(SimpleNamespace(app=app), conn, token)
    # Verified just above; only its expiry is read here.
    claims = jwt.decode(token, options={"verify_signature": False, "verify_exp": False})
    return user, float(claims["exp"])
