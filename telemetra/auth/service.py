"""Sign-up, login, token rotation and password changes. Never commits."""

import logging
import secrets
from datetime import timedelta

from anyio import to_thread
from sqlalchemy import insert, or_, select, text, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from telemetra.auth import tokens
from telemetra.auth.passwords import hash_password, verify_password
from telemetra.auth.principals import AuthUser
from telemetra.auth.roles import Role
from telemetra.auth.schemas import PasswordChange, SignupRequest
from telemetra.db.tables import new_security_stamp, refresh_tokens, users
from telemetra.kit.db import write_transaction
from telemetra.kit.errors import Conflict, Forbidden, Unauthorized
from telemetra.kit.events import record
from telemetra.kit.secrets import token_hash
from telemetra.kit.timeutil import utcnow
from telemetra.orgs import service as orgs
from telemetra.settings import Settings, SignupMode
from telemetra.users.events import UserChanged

log = logging.getLogger("telemetra.auth")


async def hash_password_async(password: str) -> str:
    # Argon2 is deliberately slow: keep it off the event loop.
    return await to_thread.run_sync(hash_password, password)


async def verify_password_async(password_hash: str | None, password: str) -> bool:
    return await to_thread.run_sync(verify_password, password_hash, password)


async def ensure_username_free(conn: AsyncConnection, username: str, email: str | None) -> None:
    clauses = [users.c.username == username]
    if email:
        clauses.append(users.c.email == email)
    taken = (await conn.execute(select(users.c.username, users.c.email)
                                .where(or_(*clauses)))).first()
    if taken is not None:
        field = "username" if taken.username == username else "email"
        raise Conflict(f"that {field} is already taken", field=field)


async def insert_user(conn: AsyncConnection, *, organization_id: int, username: str,
                      password: str, email: str | None = None, full_name: str | None = None,
                      role: Role = Role.member, is_superadmin: bool = False) -> int:
    await ensure_username_free(conn, username, email)
    now = utcnow()
    return await conn.scalar(insert(users).values(
        organization_id=organization_id, username=username, email=email, full_name=full_name,
        password_hash=await hash_password_async(password), role=role.value,
        is_superadmin=is_superadmin, is_active=True, security_stamp=new_security_stamp(),
        created_at=now, updated_at=now,
    ).returning(users.c.id))


async def signup(conn: AsyncConnection, body: SignupRequest,
                 settings: Settings) -> tuple[int, int]:
    """Create the account; returns ``(organization_id, user_id)``."""
    if settings.signup_mode is SignupMode.closed:
        raise Forbidden("sign-up is closed on this server; ask an administrator for an account")
    if settings.signup_mode is SignupMode.tenant:
        await ensure_username_free(conn, body.username, body.email)
        name = await orgs.unique_organization_name(conn, body.username)
        organization_id = await orgs.create_organization(conn, name)
        role = Role.owner
    else:
        organization_id = await orgs.ensure_organization(conn, settings.default_organization)
        role = Role.member
    user_id = await insert_user(conn, organization_id=organization_id, username=body.username,
                                password=body.password, email=body.email,
                                full_name=body.full_name, role=role)
    return organization_id, user_id


async def authenticate(conn: AsyncConnection, identity: str, password: str) -> RowMapping:
    """The active user with that username or email and password, else Unauthorized."""
    row = (await conn.execute(select(users).where(
        or_(users.c.username == identity, users.c.email == identity)))).mappings().first()
    # Verify even when there is no such user, so timing does not tell which usernames exist.
    valid = await verify_password_async(row["password_hash"] if row else None, password)
    if row is None or not valid:
        raise Unauthorized("incorrect username or password")
    if not row["is_active"]:
        raise Unauthorized("this account is deactivated")
    return row


async def issue_tokens(conn: AsyncConnection, user_id: int, security_stamp: str,
                       settings: Settings, family: str | None = None) -> dict:
    """A new pair: in a new session (login), or in ``family``'s (refresh, password change)."""
    family = family or secrets.token_hex(16)
    access, expires_in = tokens.issue_access_token(user_id, security_stamp, family,
                                                   settings.secret_key,
                                                   settings.access_token_minutes)
    refresh = tokens.new_refresh_token()
    await conn.execute(insert(refresh_tokens).values(
        user_id=user_id, family=family, token_hash=token_hash(refresh),
        expires_at=utcnow() + timedelta(days=settings.refresh_token_days), created_at=utcnow()))
    return {"access_token": access, "refresh_token": refresh, "token_type": "bearer",
            "expires_in": expires_in}


async def revoke_family(conn: AsyncConnection, family: str) -> None:
    """End a session: its refresh tokens no longer rotate and its access tokens no longer
    authenticate (auth.dependencies looks for a live token of the family)."""
    await conn.execute(update(refresh_tokens)
                       .where(refresh_tokens.c.family == family,
                              refresh_tokens.c.revoked_at.is_(None))
                       .values(revoked_at=utcnow()))


async def revoke_user_sessions(conn: AsyncConnection, user_id: int) -> None:
    """End every session of the user, with their access tokens."""
    await conn.execute(update(refresh_tokens)
                       .where(refresh_tokens.c.user_id == user_id,
                              refresh_tokens.c.revoked_at.is_(None))
                       .values(revoked_at=utcnow()))


async def refresh(conn: AsyncConnection, token: str, settings: Settings) -> dict | None:
    """Rotate a refresh token: a new pair, the old token spent.

    Returns None when a spent token is presented again: that is reuse (the token was stolen,
    or a client kept an old copy), and the whole family is revoked. The caller must commit
    that revocation and answer 401.
    """
    row = (await conn.execute(
        select(refresh_tokens, users.c.is_active, users.c.security_stamp)
        .join(users, users.c.id == refresh_tokens.c.user_id)
        .where(refresh_tokens.c.token_hash == token_hash(token))
    )).mappings().first()
    if row is None or row["revoked_at"] is not None or row["expires_at"] <= utcnow():
        raise Unauthorized("invalid or expired refresh token")
    if row["spent_at"] is not None:
        log.warning("refresh token reuse detected for user %s; family revoked", row["user_id"])
        await revoke_family(conn, row["family"])
        return None
    if not row["is_active"]:
        raise Unauthorized("this account is deactivated")
    await conn.execute(update(refresh_tokens).where(refresh_tokens.c.id == row["id"])
                       .values(spent_at=utcnow()))
    return await issue_tokens(conn, row["user_id"], row["security_stamp"], settings,
                              family=row["family"])


async def logout(conn: AsyncConnection, user: AuthUser, refresh_token: str | None) -> None:
    """End the caller's session (its access and refresh tokens) and, if a refresh token of
    another of the user's sessions is given, that session too."""
    await revoke_family(conn, user.session_id)
    if refresh_token:
        family = await conn.scalar(select(refresh_tokens.c.family).where(
            refresh_tokens.c.token_hash == token_hash(refresh_token),
            refresh_tokens.c.user_id == user.id))
        if family is not None and family != user.session_id:
            await revoke_family(conn, family)
    _sessions_ended(conn, user)


async def change_password(conn: AsyncConnection, user: AuthUser, body: PasswordChange,
                          settings: Settings) -> dict:
    """Every token issued before ends, this session's too; this session goes on with the
    fresh pair returned."""
    current = await conn.scalar(select(users.c.password_hash).where(users.c.id == user.id))
    if not await verify_password_async(current, body.current_password):
        raise Forbidden("the current password is not correct")
    stamp = new_security_stamp()  # ends every access token: they carry the old one
    await conn.execute(update(users).where(users.c.id == user.id).values(
        password_hash=await hash_password_async(body.new_password), security_stamp=stamp,
        updated_at=utcnow()))
    await revoke_user_sessions(conn, user.id)  # and every refresh token
    _sessions_ended(conn, user)
    return await issue_tokens(conn, user.id, stamp, settings, family=user.session_id)


def _sessions_ended(conn: AsyncConnection, user: AuthUser) -> None:
    """Some of ``user``'s tokens stopped working: what holds one (a live socket, closed with
    4401) is checked again at once, in every process, rather than at its next periodic check."""
    record(conn, UserChanged(user.id, user.organization_id, True, user.role.value))


async def ensure_superadmin(conn: AsyncConnection, settings: Settings) -> None:
    """At start: the default organization, and the configured superadmin if none exists."""
    organization_id = await orgs.ensure_organization(conn, settings.default_organization)
    if not (settings.admin_username and settings.admin_password):
        return
    if await conn.scalar(select(users.c.id).where(users.c.is_superadmin.is_(True)).limit(1)):
        return
    if await conn.scalar(select(users.c.id).where(users.c.username == settings.admin_username)):
        log.warning("TELEMETRA_ADMIN_USERNAME %r is taken by a user who is not a superadmin; "
                    "no superadmin was created", settings.admin_username)
        return
    await insert_user(conn, organization_id=organization_id, username=settings.admin_username,
                      password=settings.admin_password, email=settings.admin_email,
                      role=Role.owner, is_superadmin=True)
    log.info("created superadmin %r", settings.admin_username)


async def seed(engine, settings: Settings) -> None:
    """The default organization and the configured superadmin, once, even when several
    processes start at the same time (they take turns: an advisory lock on PostgreSQL, the
    write lock on SQLite)."""
    async with write_transaction(engine) as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(7003)"))
        await ensure_superadmin(conn, settings)
