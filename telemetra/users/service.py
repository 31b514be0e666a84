"""Managing an organization's users. Role rules live here, once.

- nobody changes their own role, deletes or deactivates themselves;
- nobody manages a user ranked above themselves, or grants a role above their own;
- a superadmin is never deleted or deactivated, and the last active owner stays an owner.
"""

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from telemetra.auth.principals import AuthUser
from telemetra.auth.roles import Role
from telemetra.auth.schemas import UserCreate, UserReplace, UserUpdate
from telemetra.auth.service import insert_user, revoke_user_sessions
from telemetra.db.tables import users
from telemetra.kit.errors import Conflict, Forbidden
from telemetra.kit.events import record
from telemetra.kit.pagination import PageParams, paginate
from telemetra.kit.schemas import as_update
from telemetra.kit.scoping import get_scoped, scoped
from telemetra.kit.timeutil import utcnow
from telemetra.users.events import UserChanged

USER_COLUMNS = [c for c in users.c if c.name != "password_hash"]


async def list_users(conn: AsyncConnection, organization_id: int, params: PageParams, *,
                     role: Role | None = None, is_active: bool | None = None,
                     q: str | None = None) -> tuple[list, int]:
    query = scoped(users, organization_id).with_only_columns(*USER_COLUMNS).order_by(users.c.id)
    if role is not None:
        query = query.where(users.c.role == role.value)
    if is_active is not None:
        query = query.where(users.c.is_active.is_(is_active))
    if q:
        # autoescape: a % or _ in q is matched as itself, not as a wildcard
        wanted = q.lower()
        query = query.where(
            func.lower(users.c.username).contains(wanted, autoescape=True)
            | func.lower(func.coalesce(users.c.email, "")).contains(wanted, autoescape=True))
    return await paginate(conn, query, params)


async def get_user(conn: AsyncConnection, organization_id: int, user_id: int) -> RowMapping:
    return await get_scoped(conn, users, user_id, organization_id, "user")


async def create_user(conn: AsyncConnection, actor: AuthUser, body: UserCreate) -> RowMapping:
    if not actor.role.at_least(body.role):
        raise Forbidden(f"you cannot grant the {body.role.value} role, which is above yours")
    user_id = await insert_user(conn, organization_id=actor.organization_id,
                                username=body.username, password=body.password,
                                email=body.email, full_name=body.full_name, role=body.role)
    return await get_user(conn, actor.organization_id, user_id)


async def _other_active_owners(conn: AsyncConnection, organization_id: int, user_id: int) -> int:
    return await conn.scalar(select(func.count()).select_from(users).where(
        users.c.organization_id == organization_id, users.c.role == Role.owner.value,
        users.c.is_active.is_(True), users.c.id != user_id))


def _check_may_manage(actor: AuthUser, target: RowMapping) -> None:
    if not actor.role.at_least(Role(target["role"])):
        raise Forbidden("you cannot manage a user whose role is above yours")


async def _check_removable(conn: AsyncConnection, actor: AuthUser, target: RowMapping,
                           action: str) -> None:
    if target["id"] == actor.id:
        raise Forbidden(f"you cannot {action} yourself")
    if target["is_superadmin"]:
        raise Forbidden(f"a superadmin cannot be {action}d here")
    _check_may_manage(actor, target)
    last_owner = (target["role"] == Role.owner.value and target["is_active"]
                  and not await _other_active_owners(conn, actor.organization_id, target["id"]))
    if last_owner:
        raise Conflict(f"the last owner of the organization cannot be {action}d")


async def update_user(conn: AsyncConnection, actor: AuthUser, user_id: int,
                      body: UserUpdate) -> RowMapping:
    target = await get_user(conn, actor.organization_id, user_id)
    is_self = target["id"] == actor.id
    if not is_self and not actor.role.at_least(Role.admin):
        raise Forbidden("only admins may update other users")
    values = body.model_dump(exclude_unset=True)
    if values.get("role") is None:
        values.pop("role", None)
    if "role" in values and values["role"] != target["role"]:
        new_role = Role(values["role"])
        if is_self:
            raise Forbidden("you cannot change your own role")
        _check_may_manage(actor, target)
        if not actor.role.at_least(new_role):
            raise Forbidden(f"you cannot grant the {new_role.value} role, which is above yours")
        if target["role"] == Role.owner.value and not await _other_active_owners(
                conn, actor.organization_id, target["id"]):
            raise Conflict("the last owner of the organization must stay an owner")
        values["role"] = new_role.value
    elif not is_self:
        _check_may_manage(actor, target)
    if values.get("email") and values["email"] != target["email"]:
        clash = await conn.scalar(select(users.c.id).where(users.c.email == values["email"]))
        if clash is not None:
            raise Conflict("that email is already taken", field="email")
    if values:
        await conn.execute(update(users).where(users.c.id == user_id)
                           .values(**values, updated_at=utcnow()))
    return _changed(conn, await get_user(conn, actor.organization_id, user_id))


async def replace_user(conn: AsyncConnection, actor: AuthUser, user_id: int,
                       body: UserReplace) -> RowMapping:
    """PUT: the user as ``body`` has it (``email`` and ``full_name`` left out are cleared),
    under the same rules as an update."""
    return await update_user(conn, actor, user_id, as_update(body, UserUpdate))


async def delete_user(conn: AsyncConnection, actor: AuthUser, user_id: int) -> None:
    target = await get_user(conn, actor.organization_id, user_id)
    await _check_removable(conn, actor, target, "delete")
    await conn.execute(delete(users).where(users.c.id == user_id))
    record(conn, UserChanged(user_id, target["organization_id"], False, target["role"],
                             deleted=True))


async def set_active(conn: AsyncConnection, actor: AuthUser, user_id: int,
                     active: bool) -> RowMapping:
    target = await get_user(conn, actor.organization_id, user_id)
    if not active:
        await _check_removable(conn, actor, target, "deactivate")
        await revoke_user_sessions(conn, user_id)
    else:
        if target["id"] == actor.id:
            raise Forbidden("you cannot activate yourself")
        _check_may_manage(actor, target)
    await conn.execute(update(users).where(users.c.id == user_id)
                       .values(is_active=active, updated_at=utcnow()))
    return _changed(conn, await get_user(conn, actor.organization_id, user_id))


def _changed(conn: AsyncConnection, user: RowMapping) -> RowMapping:
    """Record that ``user`` (as it is now) changed: its live sockets are checked again."""
    record(conn, UserChanged(user["id"], user["organization_id"], bool(user["is_active"]),
                             user["role"]))
    return user
