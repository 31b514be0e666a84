from typing import Annotated

from fastapi import APIRouter, Query, status
from fastapi.responses import Response

from telemetra.auth.dependencies import Admin, CurrentUser
from telemetra.auth.roles import Role
from telemetra.auth.schemas import User, UserCreate, UserReplace, UserUpdate
from telemetra.kit.db import ConnDep, TransactionalRoute
from telemetra.kit.pagination import Page, PageDep
from telemetra.users import service

router = APIRouter(prefix="/users", tags=["users"], route_class=TransactionalRoute)


@router.get("", response_model=Page[User], summary="List the organization's users")
async def list_users(conn: ConnDep, user: CurrentUser, page: PageDep,
                     role: Role | None = None, is_active: bool | None = None,
                     q: Annotated[str | None, Query(max_length=200)] = None):
    items, total = await service.list_users(conn, user.organization_id, page, role=role,
                                            is_active=is_active, q=q)
    return {"items": items, "total": total, "limit": page.limit, "offset": page.offset}


@router.post("", response_model=User, status_code=status.HTTP_201_CREATED,
             summary="Add a user to the organization (admin)")
async def create_user(body: UserCreate, conn: ConnDep, user: Admin):
    return await service.create_user(conn, user, body)


@router.get("/{user_id}", response_model=User, summary="One user")
async def get_user(user_id: int, conn: ConnDep, user: CurrentUser):
    return await service.get_user(conn, user.organization_id, user_id)


@router.patch("/{user_id}", response_model=User, summary="Update a user (self or admin)")
async def update_user(user_id: int, body: UserUpdate, conn: ConnDep, user: CurrentUser):
    return await service.update_user(conn, user, user_id, body)


@router.put("/{user_id}", response_model=User, summary="Replace a user (self or admin)",
            description="Replaces the user's `email`, `full_name` and `role`: `role` is "
                        "required, `email` and `full_name` left out are cleared. The same "
                        "rules as `PATCH`, which changes only the fields sent.")
async def replace_user(user_id: int, body: UserReplace, conn: ConnDep, user: CurrentUser):
    return await service.replace_user(conn, user, user_id, body)


@router.delete("/{user_id}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Delete a user (admin; never yourself, a superadmin or the last owner)")
async def delete_user(user_id: int, conn: ConnDep, user: Admin):
    await service.delete_user(conn, user, user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.patch("/{user_id}/deactivate", response_model=User,
              summary="Deactivate a user (admin): their tokens stop working at once")
async def deactivate_user(user_id: int, conn: ConnDep, user: Admin):
    return await service.set_active(conn, user, user_id, False)


@router.patch("/{user_id}/activate", response_model=User, summary="Reactivate a user (admin)")
async def activate_user(user_id: int, conn: ConnDep, user: Admin):
    return await service.set_active(conn, user, user_id, True)
