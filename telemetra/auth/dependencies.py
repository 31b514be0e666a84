"""Who is calling: a user (access JWT) or a device (its ``tdk_`` key), and what they may do."""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from sqlalchemy import exists, select

from telemetra.auth.principals import (  # noqa: F401 (re-exported for the endpoints)
    DEVICE_KEY_LOOKUP_CHARS,
    DEVICE_KEY_PREFIX,
    AuthDevice,
    AuthUser,
)
from telemetra.auth.roles import Role
from telemetra.auth.tokens import decode_access_token
from telemetra.db.tables import refresh_tokens, users
from telemetra.ingest.lookups import DEVICE_BY_KEY_PREFIX
from telemetra.kit.db import ConnDep
from telemetra.kit.errors import Forbidden, Unauthorized
from telemetra.kit.secrets import same_hash

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/login", auto_error=False,
                                     description="User access token, or a device key")
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False,
                              description="Device key (starts with tdk_)")


def _device_of(key: str, row) -> AuthDevice | None:
    """The device of ``row`` (``DEVICE_BY_KEY_PREFIX``'s) if ``key`` is its key: a
    constant-time compare of the hashes."""
    if row is None:
        return None
    device_id, organization_id, status, api_key_hash = row
    if not same_hash(key, api_key_hash):
        return None
    return AuthDevice(id=device_id, organization_id=organization_id, status=status)


async def _check_key(conn, key: str) -> AuthDevice | None:
    """The device a key belongs to, or None: one indexed query by the key's clear prefix,
    then a constant-time compare of the hashes."""
    row = (await conn.execute(DEVICE_BY_KEY_PREFIX,
                              {"prefix": key[:DEVICE_KEY_LOOKUP_CHARS]})).first()
    return _device_of(key, row)


async def _known_device(cache, key: str, read) -> AuthDevice | None:
    """The device of a key: from the cache, else ``read()`` from the database and cached
    (unless inactive). The cache's generation is taken before the read: see DeviceKeyCache."""
    cached = cache.get(key)
    if cached is not None:
        return cached
    generation = cache.generation()
    device = await read()
    if device is not None and device.status != "inactive":
        cache.put(key, device, generation)
    return device


async def _device_from_key(request: Request, conn, key: str) -> AuthDevice:
    device = await _known_device(request.app.state.device_keys, key,
                                 lambda: _check_key(conn, key))
    if device is None:
        raise Unauthorized("invalid device key")
    if device.status == "inactive":
        raise Forbidden("this device is inactive; a user must reactivate it")
    mqtt = getattr(request.app.state, "mqtt", None)
    if mqtt is not None:  # a device without a broker login gets one (telemetra.mqtt.accounts)
        mqtt.device_key_seen(device.id, key)
    return device


async def verified_device(lookups, cache, key: str) -> AuthDevice | None:
    """A device key as the ingest fast path needs it: the device, from the cache or verified
    by one query of ``lookups`` (``telemetra.ingest.lookups``: on SQLite, a connection of its
    own) and then cached; None when the key does not verify or the device is inactive, and
    the normal route answers why."""

    async def read() -> AuthDevice | None:
        return _device_of(key, await lookups.device_by_key_prefix(
            key[:DEVICE_KEY_LOOKUP_CHARS]))

    device = await _known_device(cache, key, read)
    return device if device is not None and device.status != "inactive" else None


async def _user_from_token(request: Request, conn, token: str) -> AuthUser:
    claims = decode_access_token(token, request.app.state.settings.secret_key)
    limits = getattr(request.app.state, "rate_limits", None)
    if limits is not None:  # per user, before any query: the token's signature is checked
        await limits.user(claims.user_id)
    # One query on every request, two index seeks: the user as they are now, if the token's
    # stamp is still theirs, and whether its session lives (a revoked family has no token
    # left unrevoked). No user_id term in the subquery: SQLite would then scan all of the
    # user's refresh tokens; the signed token already ties the family to its user.
    session_live = exists().where(refresh_tokens.c.family == claims.session_id,
                                  refresh_tokens.c.revoked_at.is_(None))
    row = (await conn.execute(
        select(users.c.id, users.c.organization_id, users.c.username, users.c.role,
               users.c.is_superadmin, users.c.is_active, session_live.label("session_live"))
        .where(users.c.id == claims.user_id, users.c.security_stamp == claims.security_stamp)
    )).first()
    if row is None:
        raise Unauthorized("access token is no longer valid")
    if not row.is_active:
        raise Unauthorized("this account is deactivated")
    if not row.session_live:
        raise Unauthorized("this session has ended (logout, password change or refresh "
                           "token reuse); log in again")
    return AuthUser(id=row.id, organization_id=row.organization_id, username=row.username,
                    role=Role(row.role), is_superadmin=bool(row.is_superadmin),
                    session_id=claims.session_id)


def _missing_credential(authorization: str | None) -> str:
    """Why no credential was found: none sent, or an Authorization header in a form that is
    not ``Bearer <token>`` (said precisely: a credential was sent, just not readably)."""
    if authorization is None or not authorization.strip():
        return "authentication required: a Bearer token or an X-API-Key"
    scheme, _, rest = authorization.strip().partition(" ")
    use = ("send 'Authorization: Bearer <access token or device key>', or a device key as "
           "'X-API-Key: tdk_...'")
    if scheme.startswith(DEVICE_KEY_PREFIX):
        return f"the Authorization header holds a device key without its scheme: {use}"
    if scheme.lower() == "bearer":
        return "the Authorization header says Bearer but holds no token after it"
    what = "a device key" if rest.strip().startswith(DEVICE_KEY_PREFIX) else "a credential"
    return (f"the Authorization header holds {what} with the scheme {scheme[:20]!r}, which "
            f"Telemetra does not take: {use}")


async def _authenticate(request: Request, conn, bearer: str | None,
                        api_key: str | None) -> AuthUser | AuthDevice:
    if api_key:
        return await _device_from_key(request, conn, api_key)
    if not bearer:
        raise Unauthorized(_missing_credential(request.headers.get("authorization")))
    if bearer.startswith(DEVICE_KEY_PREFIX):
        return await _device_from_key(request, conn, bearer)
    return await _user_from_token(request, conn, bearer)


async def get_principal(
    request: Request,
    conn: ConnDep,
    bearer: Annotated[str | None, Depends(oauth2_scheme)],
    api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> AuthUser | AuthDevice:
    return await _authenticate(request, conn, bearer, api_key)


Principal = Annotated[AuthUser | AuthDevice, Depends(get_principal)]


async def get_principal_outside_transaction(
    request: Request,
    bearer: Annotated[str | None, Depends(oauth2_scheme)],
    api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> AuthUser | AuthDevice:
    """The caller, looked up on a short connection of its own: for endpoints that hand their
    writes to the group-commit writer and must not hold a request transaction meanwhile.
    A device key already verified in this process needs no connection at all."""
    key = api_key or (bearer if bearer and bearer.startswith(DEVICE_KEY_PREFIX) else None)
    if key is not None and (cached := request.app.state.device_keys.get(key)) is not None:
        return cached
    async with request.app.state.engine.connect() as conn:
        return await _authenticate(request, conn, bearer, api_key)


IngestPrincipal = Annotated[AuthUser | AuthDevice,
                            Depends(get_principal_outside_transaction)]


async def current_user(principal: Principal) -> AuthUser:
    if isinstance(principal, AuthDevice):
        raise Forbidden("this endpoint needs a user's access token, not a device key")
    return principal


CurrentUser = Annotated[AuthUser, Depends(current_user)]


def require_role(minimum: Role):
    async def dependency(user: CurrentUser) -> AuthUser:
        if not user.role.at_least(minimum):
            raise Forbidden(f"this needs the {minimum.value} role or higher")
        return user

    dependency.__name__ = f"require_{minimum.value}"
    return dependency


Viewer = CurrentUser
Member = Annotated[AuthUser, Depends(require_role(Role.member))]
Admin = Annotated[AuthUser, Depends(require_role(Role.admin))]
Owner = Annotated[AuthUser, Depends(require_role(Role.owner))]


async def superadmin(user: CurrentUser) -> AuthUser:
    if not user.is_superadmin:
        raise Forbidden("this needs a superadmin")
    return user


Superadmin = Annotated[AuthUser, Depends(superadmin)]


async def device_or_member(principal: Principal) -> AuthUser | AuthDevice:
    """A device acting for itself, or a user with write access (members and up)."""
    if isinstance(principal, AuthUser) and not principal.role.at_least(Role.member):
        raise Forbidden("this needs the member role or higher")
    return principal


DeviceOrMember = Annotated[AuthUser | AuthDevice, Depends(device_or_member)]
