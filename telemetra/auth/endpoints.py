from typing import Annotated

from fastapi import APIRouter, Body, Request, status
from fastapi.responses import Response
from sqlalchemy import select

from telemetra.auth import service
from telemetra.auth.dependencies import CurrentUser
from telemetra.auth.schemas import (
    LoginRequest,
    LogoutRequest,
    Me,
    PasswordChange,
    RefreshRequest,
    SignupRequest,
    TokenPair,
    User,
)
from telemetra.db.tables import organizations
from telemetra.kit.db import ConnDep, TransactionalRoute
from telemetra.kit.errors import Invalid, TelemetraError
from telemetra.kit.problems import problem
from telemetra.users.service import get_user

router = APIRouter(prefix="/auth", tags=["auth"], route_class=TransactionalRoute)

_FORM_SCHEMA = {
    "type": "object",
    "required": ["username", "password"],
    "properties": {
        "username": {"type": "string", "description": "Username or email"},
        "password": {"type": "string", "format": "password"},
        "grant_type": {"type": "string", "enum": ["password"]},
        "scope": {"type": "string"},
        "client_id": {"type": "string"},
        "client_secret": {"type": "string"},
    },
}
_LOGIN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {"schema": _FORM_SCHEMA},
            "application/json": {"schema": LoginRequest.model_json_schema()},
        },
    }
}


class UnsupportedMediaType(TelemetraError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported Media Type"


async def _login_attempt(request: Request, username: str) -> None:
    """Login and sign-up attempts: 429 past TELEMETRA_RATE_LIMIT_LOGIN by client address or
    by username (guessing one account's password from many addresses is slowed too)."""
    limits = getattr(request.app.state, "rate_limits", None)
    if limits is not None:
        address = limits.client_address(request.client.host if request.client else None,
                                        request.headers.getlist("x-forwarded-for"))
        await limits.login(address, username)


_RATE_LIMITED = {429: {"description": "Too many attempts from this address or for this "
                                      "username (TELEMETRA_RATE_LIMIT_LOGIN); see Retry-After"}}


@router.post("/signup", response_model=User, status_code=status.HTTP_201_CREATED,
             summary="Create an account",
             responses={403: {"description": "Sign-up is closed on this server"},
                        409: {"description": "Username or email taken"}, **_RATE_LIMITED})
async def signup(body: SignupRequest, conn: ConnDep, request: Request):
    await _login_attempt(request, body.username)
    organization_id, user_id = await service.signup(conn, body, request.app.state.settings)
    return await get_user(conn, organization_id, user_id)


async def _login_body(request: Request) -> LoginRequest:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        try:
            data = await request.json()
        except ValueError:
            raise Invalid("the body is not valid JSON", loc=["body"]) from None
    elif content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        data = {"username": form.get("username"), "password": form.get("password")}
        if not isinstance(data["username"], str) or not isinstance(data["password"], str):
            raise Invalid("form fields username and password are required", loc=["body"])
    else:
        raise UnsupportedMediaType("send application/json or application/x-www-form-urlencoded")
    if not isinstance(data, dict):
        raise Invalid("the body must be a JSON object", loc=["body"])
    return LoginRequest.model_validate(data)


@router.post("/login", response_model=TokenPair, openapi_extra=_LOGIN_BODY,
             responses={401: {"description": "Wrong username or password, or a deactivated "
                                             "account"},
                        415: {"description": "The body is neither JSON nor a form"},
                        **_RATE_LIMITED},
             summary="Log in (OAuth2 password form or JSON)",
             description="Accepts the OAuth2 password form (so Swagger's Authorize works) or "
                         "JSON `{username or email, password}`.")
async def login(request: Request, conn: ConnDep):
    body = await _login_body(request)
    await _login_attempt(request, body.identity)
    user = await service.authenticate(conn, body.identity, body.password)
    return await service.issue_tokens(conn, user["id"], user["security_stamp"],
                                      request.app.state.settings)


@router.post("/refresh", response_model=TokenPair, summary="Rotate a refresh token",
             responses={401: {"description": "Invalid, expired, spent or revoked refresh "
                                             "token, or a deactivated account"}},
             description="The presented refresh token is spent. Presenting a spent token again "
                         "revokes every token of its family (reuse detection).")
async def refresh_tokens(body: RefreshRequest, conn: ConnDep, request: Request):
    pair = await service.refresh(conn, body.refresh_token, request.app.state.settings)
    if pair is None:
        # Returned, not raised: the family's revocation must be committed.
        return problem(401, "refresh token reuse detected; all tokens of this session are "
                            "revoked, log in again", headers={"WWW-Authenticate": "Bearer"})
    return pair


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT,
             summary="End this session: its access and refresh tokens",
             description="With or without a body. A `refresh_token` of another of your "
                         "sessions in the body ends that session too.")
async def logout(conn: ConnDep, user: CurrentUser,
                 body: Annotated[LogoutRequest | None, Body()] = None):
    await service.logout(conn, user, body.refresh_token if body else None)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me", response_model=Me, summary="The caller")
async def me(conn: ConnDep, user: CurrentUser):
    row = await get_user(conn, user.organization_id, user.id)
    org_name = await conn.scalar(select(organizations.c.name)
                                 .where(organizations.c.id == user.organization_id))
    return {**row, "organization": {"id": user.organization_id, "name": org_name}}


@router.post("/password", response_model=TokenPair,
             summary="Change your own password; every earlier token ends",
             responses={403: {"description": "The current password is not correct"}},
             description="Every token issued before, of every session and this one's too, "
                         "stops working at once. The answer is a fresh pair for this session.")
async def change_password(body: PasswordChange, conn: ConnDep, user: CurrentUser,
                          request: Request):
    return await service.change_password(conn, user, body, request.app.state.settings)

